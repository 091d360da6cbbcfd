import BackingStore
import Foundation
import SecureMemory
import Shamir
import Testing
import TestSupport

/// A process outside the test holding an exclusive SQLite lock on `path`
/// (Debian's python3 with its sqlite3 module) until it is stopped. SPIKE's
/// database is in WAL mode, where only EXCLUSIVE locking mode keeps readers out.
final class StoreLock: @unchecked Sendable {
    let process = Process()
    let exitWatch: ExitWatch
    let out = Pipe()

    init(_ path: String) async throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", """
            import sqlite3, sys, time
            c = sqlite3.connect(sys.argv[1], isolation_level=None)
            c.execute("PRAGMA locking_mode=EXCLUSIVE")
            c.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            time.sleep(120)
            """, path]
        process.standardOutput = out
        exitWatch = ExitWatch(process)
        try process.run()
        let reader = out.fileHandleForReading
        let locked = await Task.detached { String(decoding: reader.availableData, as: UTF8.self) }.value
        #expect(locked.hasPrefix("locked"), "the lock holder did not start")
    }

    /// SIGKILL: a test runner may pass SIGTERM on as ignored; the lock dies
    /// with the process, whose exit is awaited.
    func release() async {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        if !(await exitWatch.exited(within: .seconds(30))) { Issue.record("the lock holder did not die of SIGKILL within 30 s") }
    }

    /// For a `defer`, when a test throws before `await release()`: the same
    /// SIGKILL, not waited for (a `defer` cannot await).
    func releaseWithoutWaiting() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// The fail-closed rules as an operator meets them: real keeper processes,
/// real Nexus processes, a real SQLite file.
@Suite(.serialized, .timeLimit(.minutes(3))) struct FailClosedProcessTests {
    /// Keeper 1 holds its shard, keeper 2 a shard of another key, keeper 3 nothing.
    func mixedKeepers(_ w: FaultWorld) async throws -> SecretBytes {
        let other = try NativeShamir().split(rootKey: randomRootKey(), threshold: 2, shares: 3).shards[1].value
        #expect(try await w.contribute(1, other))
        try await w.restartKeeper(2)
        return other
    }

    func holds(_ w: FaultWorld, _ i: Int, _ shard: SecretBytes) async -> Bool {
        let array = shard.withUnsafeBytes { $0.map(String.init).joined(separator: ",") }
        return await w.curl(i, "/v1/store/shard", "{}") == "{\"shard\":[\(array)],\"Err\":\"\"}"
    }

    /// The keeper requests start before the operator port is bound. When the
    /// port cannot be had, the run is abandoned: exit 1 naming the port, no
    /// summary on stdout, and no keeper written to, not even the empty one
    /// that the first distribution round would have filled.
    @Test func aTakenPortEndsTheRunAndWritesNoKeeper() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        try await w.restartKeeper(2)  // empty: distribution would write it
        let taken = "127.0.0.1:\(w.keeperPorts[0])"
        let n = try w.nexus("taken", ["--once", "--deadline", "10"], env: ["SPIKE_NEXUS_TLS_PORT": taken])
        #expect(try await n.exit() == 1)
        #expect(n.stderr.contains("SPIKE_NEXUS_TLS_PORT: cannot listen on \(taken)"), "\(n.stderr)")
        #expect(n.stdout.isEmpty, "a summary was printed: \(n.stdout)")
        #expect(await w.holdsItsShard(0))
        #expect(await w.holdsItsShard(1))
        #expect(await w.curl(2, "/v1/store/shard", "{}").contains("\"shard\":null"))
        await w.finish()
    }

    @Test func aMistypedDataDirectoryIsABadSettingAndTouchesNoKeeper() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        let other = try await mixedKeepers(w)
        let typo = w.dir.appendingPathComponent("nexsu").path
        let n = try w.nexus("typo", ["--once", "--deadline", "10"], env: ["SPIKE_NEXUS_DATA_DIR": typo])
        #expect(try await n.exit() == 64)
        let lines = n.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("SPIKE_NEXUS_DATA_DIR") && lines[0].contains(typo + "/data/spike.db"), "\(n.stderr)")
        #expect(n.trace.isEmpty, "recovery started: \(n.trace)")

        // Allowed as a fresh installation, the key still cannot be checked: nothing is installed.
        let allowed = try w.nexus("allowed", ["--once", "--deadline", "3", "--allow-empty-store"], env: ["SPIKE_NEXUS_DATA_DIR": typo])
        #expect(try await allowed.exit() == 1)
        #expect(!allowed.events("key_unverifiable").isEmpty)
        #expect(allowed.events("key_verified").isEmpty && allowed.events("key_confirmed").isEmpty && allowed.events("root_key_set").isEmpty)
        #expect(allowed.summary?["operational"] as? Bool == false)

        // Every keeper is as it was: the good shard survives.
        #expect(await w.holdsItsShard(0))
        #expect(await holds(w, 1, other))
        #expect(await w.curl(2, "/v1/store/shard", "{}").contains("\"shard\":null"))
        #expect(!FileManager.default.fileExists(atPath: typo))

        // Against the real database the wrong keeper is found once keeper 3 is back.
        #expect(try await w.contribute(2, w.shards[2]))
        let real = try w.nexus("real", ["--once", "--deadline", "30"], env: FaultTests.distributionTimeout)
        #expect(try await real.exit() == 0, "\(real.stderr)")
        // Named when its answer is heard (7.3, or a late answer within the wait); replaced either way.
        #expect(real.summary?["keepers_rejected"] as? [Int] == [2] || real.events("late_answer", keeper: 2).contains { $0.contains("cancelled") })
        #expect(await w.holdsItsShard(1), "distribution did not repair keeper 2")
        await w.finish()
    }

    /// A store locked by another process is not a wrong key: the run ends at
    /// its deadline naming the store, and recovers once the lock goes away.
    @Test func aLockedStoreIsWaitedForNotBlamed() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        let db = w.dir.appendingPathComponent("nexus/data/spike.db").path
        let lock = try await StoreLock(db)
        defer { lock.releaseWithoutWaiting() }  // only if it throws before `release()`
        let started = ContinuousClock.now
        let n = try w.nexus("locked", ["--once", "--deadline", "3"])
        #expect(try await n.exit() == 1)
        let wall = ContinuousClock.now - started
        #expect(n.events("key_verification_failed").isEmpty, "the lock was blamed on the key")
        let unreadable = n.events("store_unreadable")
        #expect(!unreadable.isEmpty && unreadable[0].contains(db) && unreadable[0].contains("SPIKE_NEXUS_DATA_DIR") && unreadable[0].contains("locked"))
        // The deadline bounds the store waits too: deadline_exceeded is recorded before 3.5 s.
        let at = n.events("deadline_exceeded").first.flatMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["t_ms"] as? Double
        }
        #expect(at.map { $0 >= 3000 && $0 < 3500 } == true, "deadline_exceeded at \(at ?? -1) ms")
        #expect(wall < .seconds(10), "exit took \(wall)")
        #expect(n.events("root_key_set").isEmpty)

        // Released while a second run waits: that run becomes operational with the right key.
        let second = try w.nexus("released", ["--once", "--deadline", "60"], env: FaultTests.distributionTimeout)
        #expect(try await eventually(30) { !second.events("store_unreadable").isEmpty })
        await lock.release()
        #expect(try await second.exit() == 0, "\(second.stderr)")
        #expect(!second.events("store_retry").isEmpty && second.events("key_verification_failed").isEmpty)
        #expect(second.summary?["operational"] as? Bool == true)
        await w.finish()
    }

    /// A 0-byte file and a file that is not a database are unreadable, not wrong keys.
    @Test(arguments: ["empty-file", "not-a-database"])
    func aBrokenStoreFileIsUnreadable(kind: String) async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        let db = w.dir.appendingPathComponent("nexus/data/spike.db").path
        let before = FileManager.default.contents(atPath: db)
        try (kind == "empty-file" ? Data() : Data(repeating: 0x41, count: 4096)).write(to: URL(fileURLWithPath: db))
        let n = try w.nexus(kind, ["--once", "--deadline", "2"])
        #expect(try await n.exit() == 1)
        #expect(!n.events("store_unreadable").isEmpty && n.events("key_verification_failed").isEmpty && n.events("root_key_set").isEmpty)
        try before?.write(to: URL(fileURLWithPath: db))
        for i in 0..<3 { #expect(await w.holdsItsShard(i), "keeper \(i + 1) was written") }
        await w.finish()
    }

    /// Restore against a store whose probe rows verify but a later row is
    /// altered: refused with 500, the key is taken back out, recover never
    /// hands out shards, the process exits 1, nothing reaches a keeper.
    @Test func aRestoreOntoADamagedStoreIsRolledBack() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        let db = w.dir.appendingPathComponent("nexus/data/spike.db").path
        do {
            let conn = try SQLiteConnection(path: db, mode: .readWriteCreate)
            try conn.execute("UPDATE secret_metadata SET encrypted_max_versions = zeroblob(length(encrypted_max_versions))")
        }
        for i in 0..<3 { try await w.restartKeeper(i) }  // empty keepers: recovery waits
        let port = freePort()
        let n = try w.nexus("restore", ["--deadline", "60"], env: ["SPIKE_NEXUS_TLS_PORT": "127.0.0.1:\(port)"])
        #expect(try await eventually(30) { !n.events("round_exhausted").isEmpty })
        func pilot(_ role: String, _ path: String, _ body: String) async -> String {
            await run("/usr/bin/curl", ["-s", "-k", "--max-time", "20", "-w", " %{http_code}",
                                        "--cert", w.dir.appendingPathComponent("pilot-\(role).pem").path,
                                        "--key", w.dir.appendingPathComponent("pilot-\(role).key").path,
                                        "-X", "POST", "-d", body, "https://127.0.0.1:\(port)\(path)"]).output
        }
        func shard(_ i: Int) -> String { "{\"id\":\(i + 1),\"shard\":[\(w.shards[i].withUnsafeBytes { $0.map(String.init).joined(separator: ",") })]}" }
        #expect(await pilot("recover", "/v1/operator/recover", "{}") == "{\"err\":\"state_not_ready\"} 503")
        #expect(await pilot("restore", "/v1/operator/restore", shard(0)) == "{\"collected\":1,\"remaining\":1,\"restored\":false} 200")
        #expect(await pilot("restore", "/v1/operator/restore", shard(1)) == "{\"collected\":0,\"remaining\":0,\"restored\":false,\"err\":\"api_internal_error\"} 500")
        #expect(try await n.exit() == 1)
        #expect(n.events("root_key_set").count == 1 && !n.events("state_initialization_failed").isEmpty && n.events("operational").isEmpty)
        #expect(n.stderr.contains("error") && n.stderr.contains("state initialization failed"))
        for i in 0..<3 { #expect(await w.curl(i, "/v1/store/shard", "{}").contains("\"shard\":null"), "keeper \(i + 1) was written") }
        await w.finish()
    }

    /// Restores racing each other: one install, consistent answers, shards only after step 12.
    @Test func concurrentRestoresThroughTheRoute() async throws {
        let w = try await FaultWorld()
        defer { w.abandon() }  // only if it throws before `finish()`
        for i in 0..<3 { try await w.restartKeeper(i) }
        let port = freePort()
        let n = try w.nexus("restore", ["--deadline", "60"], env: ["SPIKE_NEXUS_TLS_PORT": "127.0.0.1:\(port)", "SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT": "3s"])
        #expect(try await eventually(30) { !n.events("round_exhausted").isEmpty })
        let cert = w.dir.appendingPathComponent("pilot-restore.pem").path, key = w.dir.appendingPathComponent("pilot-restore.key").path
        let answers = await withTaskGroup(of: String.self) { group in
            for i in 0..<3 {
                let body = "{\"id\":\(i + 1),\"shard\":[\(w.shards[i].withUnsafeBytes { $0.map(String.init).joined(separator: ",") })]}"
                group.addTask {
                    await run("/usr/bin/curl", ["-s", "-k", "--max-time", "20", "--cert", cert, "--key", key, "-X", "POST", "-d", body,
                                                "https://127.0.0.1:\(port)/v1/operator/restore"]).output
                }
            }
            var all: [String] = []
            for await a in group { all.append(a) }
            return all.sorted()
        }
        #expect(answers == ["{\"collected\":1,\"remaining\":1,\"restored\":false}",
                            "{\"collected\":2,\"remaining\":0,\"restored\":true}", "{\"collected\":2,\"remaining\":0,\"restored\":true}"])
        #expect(try await eventually(30) { !n.events("operational").isEmpty })
        #expect(n.events("root_key_set").count == 1)
        let recovered = await run("/usr/bin/curl", ["-s", "-k", "--max-time", "20", "--cert", w.dir.appendingPathComponent("pilot-recover.pem").path,
                                                    "--key", w.dir.appendingPathComponent("pilot-recover.key").path, "-X", "POST", "-d", "{}",
                                                    "https://127.0.0.1:\(port)/v1/operator/recover"]).output
        #expect(recovered.hasPrefix("{\"shards\":{\"1\":["))
        var distributed = false
        for _ in 0..<60 where !distributed {
            distributed = await w.holdsItsShard(2)
            if !distributed { try await Task.sleep(for: .milliseconds(500)) }
        }
        #expect(distributed, "distribution did not start after the restore")
        n.process.terminate()
        #expect(try await n.exit() == 0)
        await w.finish()
    }
}
