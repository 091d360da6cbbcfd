import BackingStore
import BackingStoreWriter
import Foundation
import SecureMemory
import Shamir
import ShamirCore
import SpikeWire
import Testing
import TestSupport
@testable import Recovery

/// The recovery fails closed at its edges: a store that is missing, empty or
/// unreadable, operator shards, keepers that change their answer, answers
/// that come late. Real keepers over mTLS, a real SQLite file.
@Suite(.serialized, .timeLimit(.minutes(2))) struct FailClosedTests {
    static func validTrace(_ r: NexusRecovery, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(SpecTable.validate(r.trace.recorded.map { ($0.step, $0.event) }, in: try SpecTable.load()) == nil, sourceLocation: sourceLocation)
    }

    static func fileBytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    @Test func aMissingStoreIsRejectedBeforeAnyKeeperIsAsked() async throws {
        let w = try World()
        let asked = Counter()
        for _ in 0..<3 { try await w.addScriptedKeeper { asked.bump(); return Array("{\"shard\":null}".utf8) } }
        let r = try w.recovery(database: w.dir.appendingPathComponent("typo/spike.db").path)
        let outcome = await r.run(distributor: nil)
        guard case .rejected(let why) = outcome.ending else { Issue.record("expected a rejected configuration: \(outcome.ending)"); return }
        #expect(why.hasPrefix("SPIKE_NEXUS_DATA_DIR: no SPIKE database at ") && why.contains("typo/spike.db") && why.contains("--allow-empty-store"))
        #expect(events(r) == ["nexus_started", "recovery_begun", "configuration_rejected"])
        #expect(asked.value == 0)
        #expect(!r.holder.isSet)
        await w.stop()
    }

    /// Keeper 1 right, keeper 2 holding a shard of
    /// another key, keeper 3 empty, and no store to check against. Nothing is
    /// installed and nothing is written to any keeper.
    @Test func anUncheckableKeyIsNeverInstalledOrDistributed() async throws {
        let w = try World()
        for _ in 0..<3 { try await w.addKeeper() }
        let other = try NativeShamir().split(rootKey: randomRootKey(), threshold: 2, shares: 3).shards[1].value
        w.fill(0)
        w.fill(1, with: other)
        let r = try w.recovery(deadline: .seconds(3), database: w.dir.appendingPathComponent("typo/spike.db").path, allowEmptyStore: true)
        let d = w.distributor(for: r)
        let distribution = Task { await d.run() }
        let outcome = await r.run(distributor: d)
        distribution.cancel()
        await distribution.value
        guard case .failed(let why) = outcome.ending else { Issue.record("an uncheckable key was accepted: \(outcome.ending)"); return }
        #expect(why.contains("deadline"))
        #expect(events(r).contains("key_unverifiable"))
        #expect(!events(r).contains("key_verified") && !events(r).contains("key_confirmed") && !events(r).contains("root_key_set"))
        #expect(!r.holder.isSet && !d.isArmed && d.counts.passes == 0)
        w.keepers[0].slot.withShard { #expect($0?.constantTimeEquals(w.shards[0]) == true, "the good shard was overwritten") }
        w.keepers[1].slot.withShard { #expect($0?.constantTimeEquals(other) == true) }
        w.keepers[2].slot.withShard { #expect($0 == nil) }
        #expect(r.allShardBuffersZero)
        try Self.validTrace(r)
        await w.stop()
    }

    /// An empty store (schema, no row) cannot check a key: it is accepted only
    /// once every keeper's shard lies on one polynomial, and never called verified.
    @Test func anEmptyStoreNeedsEveryKeeperToAgree() async throws {
        let w = try World(secrets: 0, policies: false)
        for _ in 0..<3 { try await w.addKeeper() }
        w.fill(0)
        w.fill(1)  // keeper 3 is empty for two rounds
        let exhausted = Counter()
        let r = try w.recovery(observer: { entry in
            guard entry.event == "round_exhausted" else { return }
            exhausted.bump()
            if exhausted.value == 2 { w.fill(2) }
        })
        let outcome = await r.run(distributor: nil)
        #expect(outcome.ending == .operational)
        #expect(events(r).contains("key_unverifiable") && events(r).contains("key_confirmed"))
        #expect(!events(r).contains("key_verified"))
        #expect(r.holder.copy()?.constantTimeEquals(w.rootKey) == true)
        #expect(r.trace.recorded.first { $0.event == "key_confirmed" }?.detail?.contains("not checked against the store") == true)
        try Self.validTrace(r)
        await w.stop()
    }

    @Test func anEmptyStoreWithOneDisagreeingKeeperInstallsNothing() async throws {
        let w = try World(secrets: 0, policies: false)
        for _ in 0..<3 { try await w.addKeeper() }
        w.fill(0)
        w.fill(1, with: try NativeShamir().split(rootKey: randomRootKey(), threshold: 2, shares: 3).shards[1].value)
        w.fill(2)
        let r = try w.recovery(deadline: .seconds(3))
        let outcome = await r.run(distributor: nil)
        if case .failed = outcome.ending {} else { Issue.record("expected the deadline: \(outcome.ending)") }
        #expect(events(r).contains("key_unverifiable") && !events(r).contains("root_key_set"))
        #expect(r.trace.recorded.contains { $0.event == "key_unverifiable" && ($0.detail ?? "").contains("do not lie on one polynomial") })
        #expect(!r.holder.isSet)
        try Self.validTrace(r)
        await w.stop()
    }

    /// An empty store with a keeper down: every round waits for all shares, and
    /// each exhausted round drops them all, so the rounds go on without breaking A4.4.3.
    @Test func anEmptyStoreWithAKeeperDownKeepsAskingEveryone() async throws {
        let w = try World(threshold: 1, secrets: 0, policies: false)
        try await w.addKeeper()
        try await w.addKeeper()
        try await w.addDownKeeper()
        w.fill(0)
        w.fill(1)
        // Long enough for two rounds under a sanitizer on a loaded machine.
        let r = try w.recovery(deadline: .seconds(15))
        let outcome = await r.run(distributor: nil)
        guard case .failed(let why) = outcome.ending else { Issue.record("expected the deadline: \(outcome.ending)"); return }
        #expect(why.contains("deadline"), "\(why)")
        #expect(events(r).filter { $0 == "round_exhausted" }.count >= 2 && !events(r).contains("root_key_set"))
        #expect(r.allShardBuffersZero)
        try Self.validTrace(r)
        await w.stop()
    }

    /// A store that cannot be read says nothing about the key: the candidate
    /// is kept and the store is read again until it can be.
    @Test func anUnreadableStoreIsRetriedNotBlamedOnTheKey() async throws {
        let w = try World()
        try await w.addKeeper()
        try await w.addKeeper()
        w.fill(0)
        w.fill(1)
        let real = w.databasePath, aside = real + ".aside"
        try FileManager.default.moveItem(atPath: real, toPath: aside)
        #expect(FileManager.default.createFile(atPath: real, contents: Data("this is not an SQLite database, just some bytes".utf8)))
        let r = try w.recovery(deadline: .seconds(30), observer: { entry in
            guard entry.event == "store_unreadable" else { return }
            try? FileManager.default.removeItem(atPath: real)
            try? FileManager.default.moveItem(atPath: aside, toPath: real)
        })
        let outcome = await r.run(distributor: nil)
        #expect(outcome.ending == .operational)
        #expect(!events(r).contains("key_verification_failed"))
        let unreadable = r.trace.recorded.first { $0.event == "store_unreadable" }
        #expect(unreadable?.detail?.contains(real) == true && unreadable?.detail?.contains("SPIKE_NEXUS_DATA_DIR") == true)
        #expect(events(r).contains("store_retry") && events(r).contains("key_verified"))
        #expect(outcome.shardsUsed == [1, 2])
        try Self.validTrace(r)
        await w.stop()
    }

    /// Liveness: with exactly T keepers reachable, a
    /// keeper that answered a wrong shard and then was fixed is heard again.
    @Test func aKeeperThatCorrectsItselfIsHeard() async throws {
        let w = try World()
        try await w.addKeeper()
        try await w.addKeeper()
        try await w.addDownKeeper()
        w.fill(0, with: try NativeShamir().split(rootKey: randomRootKey(), threshold: 2, shares: 3).shards[0].value)
        w.fill(1)
        let exhausted = Counter()
        let r = try w.recovery(deadline: .seconds(60), observer: { entry in
            guard entry.event == "round_exhausted" else { return }
            exhausted.bump()
            if exhausted.value == 2 { w.fill(0) }
        })
        let outcome = await r.run(distributor: nil)
        #expect(outcome.ending == .operational)
        #expect(r.holder.copy()?.constantTimeEquals(w.rootKey) == true)
        // The wrong shard failed before it was fixed (how many rounds it took depends on timing).
        #expect(events(r).filter { $0 == "key_verification_failed" }.count >= 1)
        #expect(r.trace.recorded.contains { $0.event == "round_exhausted" && ($0.detail ?? "").contains("will be asked again") })
        try Self.validTrace(r)
        await w.stop()
    }

    /// A wrong shard that arrives after the key was verified from two good
    /// ones is still checked, named and wiped.
    @Test func aLateWrongShardIsNamed() async throws {
        let w = try World()
        let stale = try NativeShamir().split(rootKey: randomRootKey(), threshold: 2, shares: 3).shards[0].value.withUnsafeBytes { Array($0) }
        let gate = Gate()
        try await w.addScriptedKeeper(gate: gate, secretBody: { KeeperWire.shardBody(SecretBytes(copying: stale)) })
        try await w.addKeeper()
        try await w.addKeeper()
        w.fill(1)
        w.fill(2)
        let r = try w.recovery(lateAnswerWait: .seconds(30), observer: { if $0.event == "key_verified" { gate.open() } })
        let outcome = await r.run(distributor: nil)
        #expect(outcome.ending == .operational)
        #expect(outcome.shardsUsed == [2, 3])
        #expect(outcome.keepersRejected == [1])
        #expect(outcome.summaryJSON.contains("\"keepers_rejected\":[1]"))
        let late = r.trace.recorded.first { $0.event == "late_answer" }
        #expect(late?.keeper == 1 && late?.detail == "shard disagrees with the installed key")
        #expect(r.allShardBuffersZero)
        try Self.validTrace(r)
        w.expectNoSecretsInLogs()
        await w.stop()
    }

    /// A held spare that disagrees with the verified key is named too.
    @Test func aHeldSpareThatDisagreesIsNamed() async throws {
        let w = try World(threshold: 1)
        for _ in 0..<2 { try await w.addKeeper() }
        w.fill(0)
        w.fill(1, with: try NativeShamir().split(rootKey: randomRootKey(), threshold: 1, shares: 2).shards[1].value)
        let r = try w.recovery(lateAnswerWait: .seconds(30))
        let outcome = await r.run(distributor: nil)
        #expect(outcome.ending == .operational)
        // Whichever answer comes first, keeper 2 ends up named: as a late answer, or excluded at 7.3.
        #expect(outcome.keepersRejected == [2])
        await w.stop()
    }

    // MARK: operator shards

    func restoreWorld(tamperLaterRow: Bool = false) async throws -> World {
        let w = try World(secrets: 4)
        for _ in 0..<3 { try await w.addKeeper() }  // all empty: recovery loops until the restore
        if tamperLaterRow {
            // The probe row (smallest path) stays intact; a later row's ciphertext is altered.
            let db = try SQLiteConnection(path: w.databasePath, mode: .readWriteCreate)
            try db.execute("UPDATE secrets SET encrypted_data = zeroblob(length(encrypted_data)) WHERE path = 'app/3' AND version = 2")
        }
        return w
    }

    @Test func concurrentRestoresInstallOnce() async throws {
        let w = try await restoreWorld()
        let r = try w.recovery(deadline: .seconds(60))
        let run = Task { await r.run(distributor: nil) }
        #expect(try await eventually(30) { events(r).contains("round_exhausted") })
        #expect(r.installedKeyShards() == nil)
        let shards = w.shards  // read once: `World.shards` is lazy, not for concurrent first use
        let replies = await withTaskGroup(of: RestoreReply.self) { group in
            for id in 1...3 { group.addTask { await r.submitRestore(id: id, shard: shards[id - 1].copy()) } }
            var all: [RestoreReply] = []
            for await reply in group { all.append(reply) }
            return all
        }
        let outcome = await run.value
        #expect(outcome.ending == .operational)
        #expect(replies.contains(.progress(collected: 1, remaining: 1, restored: false)))
        #expect(replies.filter { $0 == .progress(collected: 2, remaining: 0, restored: true) }.count == 2)
        #expect(events(r).filter { $0 == "root_key_set" }.count == 1)
        #expect(events(r).filter { $0 == "restore_shard_received" }.count == 2)
        #expect(r.holder.copy()?.constantTimeEquals(w.rootKey) == true)
        #expect(r.installedKeyShards()?.count == 3)
        // After the install every restore answers restored.
        #expect(await r.submitRestore(id: 1, shard: w.shards[0].copy()) == .progress(collected: 2, remaining: 0, restored: true))
        try Self.validTrace(r)
        await w.stop()
    }

    @Test func aRestoreWhoseStoreFailsToLoadRollsTheKeyBack() async throws {
        let w = try await restoreWorld(tamperLaterRow: true)
        let before = FailClosedTests.fileBytes(w.databasePath)
        let r = try w.recovery(deadline: .seconds(60))
        let run = Task { await r.run(distributor: nil) }
        #expect(try await eventually(30) { events(r).contains("round_exhausted") })
        #expect(await r.submitRestore(id: 1, shard: w.shards[0].copy()) == .progress(collected: 1, remaining: 1, restored: false))
        guard case .failed(let why) = await r.submitRestore(id: 2, shard: w.shards[1].copy()) else {
            Issue.record("the restore of a damaged store was not refused")
            return
        }
        #expect(why.contains("state initialization failed") && why.contains("app/3"))
        let outcome = await run.value
        if case .failed = outcome.ending {} else { Issue.record("expected failure: \(outcome.ending)") }
        #expect(!r.holder.isSet, "A9.3: the key stayed installed")
        #expect(!r.isOperational && r.installedKeyShards() == nil)
        #expect(events(r).contains("root_key_set") && events(r).last == "state_initialization_failed")
        #expect(w.logs.all.contains { $0.hasPrefix("error") && $0.contains("state initialization failed") })
        // Later restores get the final answer, never `restored`.
        if case .failed = await r.submitRestore(id: 3, shard: w.shards[2].copy()) {} else { Issue.record("a later restore was not refused") }
        #expect(FailClosedTests.fileBytes(w.databasePath) == before, "the database was modified")
        #expect(r.allShardBuffersZero)
        try Self.validTrace(r)
        await w.stop()
    }

    @Test func restoreShardsOfAnotherKeyAreRefusedAndDiscarded() async throws {
        let w = try await restoreWorld()
        let other = try NativeShamir().split(rootKey: randomRootKey(), threshold: 2, shares: 3).shards.map(\.value)
        let r = try w.recovery(deadline: .seconds(60))
        let run = Task { await r.run(distributor: nil) }
        #expect(try await eventually(30) { events(r).contains("round_exhausted") })
        #expect(await r.submitRestore(id: 4, shard: w.shards[0].copy()) == .badShard("shard id 4 is outside 1...3 (SPIKE_NEXUS_SHAMIR_SHARES)"))
        _ = await r.submitRestore(id: 1, shard: other[0])
        guard case .failed = await r.submitRestore(id: 2, shard: other[1]) else { Issue.record("a wrong restore key was accepted"); return }
        #expect(w.logs.all.contains { $0.hasPrefix("error") && $0.contains("operator restore refused") })
        #expect(!r.holder.isSet)
        // The discarded shards are gone: the right ones now restore.
        #expect(await r.submitRestore(id: 2, shard: w.shards[1].copy()) == .progress(collected: 1, remaining: 1, restored: false))
        #expect(await r.submitRestore(id: 3, shard: w.shards[2].copy()) == .progress(collected: 2, remaining: 0, restored: true))
        #expect(await run.value.ending == .operational)
        try Self.validTrace(r)
        await w.stop()
    }

    @Test func restoreFilesGoThroughTheMachine() async throws {
        let w = try await restoreWorld()
        let r = try w.recovery(deadline: .seconds(30))
        let files = [Shard(id: 1, value: w.shards[0].copy()), Shard(id: 3, value: w.shards[2].copy())]
        let outcome = await r.run(distributor: nil, restoreFiles: files)
        #expect(outcome.ending == .operational && outcome.shardsUsed == [1, 3])
        #expect(Array(events(r).prefix(6)) == ["nexus_started", "recovery_begun", "keepers_configured", "restore_shard_received",
                                                "restore_shard_received", "restore_threshold_met"])
        #expect(!events(r).contains("round_started"))
        #expect(r.trace.recorded.first { $0.event == "root_key_set" }?.detail == "from restore files")
        try Self.validTrace(r)

        // More files than the threshold: the spares are checked against the key too.
        let all = try w.recovery(deadline: .seconds(30))
        let three = (0..<3).map { Shard(id: UInt64($0 + 1), value: w.shards[$0].copy()) }
        #expect(await all.run(distributor: nil, restoreFiles: three).ending == .operational)
        #expect(events(all).filter { $0 == "restore_shard_received" }.count == 3)

        let bad = try w.recovery(deadline: .seconds(30))
        let other = try NativeShamir().split(rootKey: randomRootKey(), threshold: 2, shares: 3).shards
        let refused = await bad.run(distributor: nil, restoreFiles: Array(other.prefix(2)))
        guard case .failed(let why) = refused.ending else { Issue.record("wrong restore files accepted"); return }
        #expect(why.contains("does not open the store"))
        #expect(events(bad).last == "restore_failed" && !bad.holder.isSet)
        try Self.validTrace(bad)
        await w.stop()
    }
}
