import Crypto
import Foundation
import SecureMemory
import Testing
import TestSupport
@testable import BackingStore
@testable import BackingStoreWriter

func randomKey() -> SecretBytes {
    let k = SecretBytes(zeroedCount: 32)
    k.withUnsafeMutableBytes { raw in for i in 0..<32 { raw[i] = UInt8.random(in: 0...255) } }
    return k
}

func string(_ s: SecretBytes) -> String { s.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }

func checksum(_ path: String) throws -> String {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
}

struct Fixture {
    let dir: URL
    var path: String { dir.appendingPathComponent("data/spike.db").path }
    init() throws {
        dir = try temporaryDirectory("store")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("data"), withIntermediateDirectories: true)
    }
}

let allPermissions = ["read", "write", "list", "execute", "super"]
let t0 = Date(timeIntervalSince1970: 1_764_000_000.123456789)

@Suite struct BackingStoreRoundTripTests {
    @Test func manySecretsVersionsDeletionsUnicodeAndPolicies() throws {
        let f = try Fixture()
        let key = randomKey()
        do {
            let w = try SpikeDatabaseWriter(path: f.path, rootKey: key)
            for i in 0..<1000 {
                let versions = (1...3).map { v in
                    SpikeDatabaseWriter.Version(version: v, data: ["user": "u\(i)", "pass": "p\(i)-v\(v)"], created: t0.addingTimeInterval(Double(v)),
                                                deleted: v == 1 ? t0.addingTimeInterval(10) : nil)
                }
                try w.putSecret(path: "apps/app-\(i)/db", versions: versions, created: t0, updated: t0.addingTimeInterval(3))
            }
            try w.putSecret(path: "tricky", versions: [.init(version: 1, data: ["html": "<b>&amp;</b>", "ünï": "日本語 🔑", "q": "\"\\\n\t\u{2028}"], created: t0)],
                            created: t0, updated: t0)
            for (i, p) in allPermissions.enumerated() {
                try w.putPolicy(name: "policy-\(p)", spiffeIDPattern: "^spiffe://spike\\.ist/app/\(i)$", pathPattern: "^apps/.*$",
                                permissions: Array(allPermissions.prefix(i + 1)), created: 1_764_000_000, updated: 1_764_000_100)
            }
        }
        let before = try checksum(f.path)
        let state = try SpikeDatabase.load(path: f.path, rootKey: key)
        #expect(try checksum(f.path) == before)
        #expect(state.secretCount == 1001)
        #expect(state.versionCount == 3001)
        #expect(state.policyCount == 5)
        let app = try #require(state.secrets["apps/app-7/db"])
        #expect(app.versions.count == 3)
        #expect(app.versions[1]!.isDeleted && !app.versions[2]!.isDeleted)
        #expect(app.versions[3]!.data.map { "\($0.key)=\(string($0.value))" }.sorted() == ["pass=p7-v3", "user=u7"])
        #expect(app.versions[2]!.createdTime == "2025-11-24 16:00:02.123456716+00:00" || app.versions[2]!.createdTime.hasPrefix("2025-11-24 16:00:02.12345"))
        #expect(app.metadata == SecretMetadata(currentVersion: 3, oldestVersion: 1, createdTime: 1_764_000_000, updatedTime: 1_764_000_003, maxVersions: 10))
        let tricky = try #require(state.secrets["tricky"]?.versions[1])
        let values = Dictionary(uniqueKeysWithValues: tricky.data.map { ($0.key, string($0.value)) })
        #expect(values == ["html": "<b>&amp;</b>", "ünï": "日本語 🔑", "q": "\"\\\n\t\u{2028}"])
        let policy = try #require(state.policies["policy-super"])
        #expect(policy.permissions == allPermissions)
        #expect(policy.spiffeIDPattern == "^spiffe://spike\\.ist/app/4$")
        #expect(policy.createdTime == 1_764_000_000)
    }

    @Test func goEncodings() {
        #expect(SpikeDatabaseWriter.goJSON(["b": "<>&", "a": "x"]) == #"{"a":"x","b":"\u003c\u003e\u0026"}"#)
        #expect(SpikeDatabaseWriter.goTime(Date(timeIntervalSince1970: 0)) == "1970-01-01 00:00:00+00:00")
        #expect(SpikeDatabaseWriter.goTime(Date(timeIntervalSince1970: 1.5)) == "1970-01-01 00:00:01.5+00:00")
    }

    @Test func emptyAndMissingDatabases() throws {
        let f = try Fixture()
        let key = randomKey()
        #expect(try SpikeDatabase.load(path: f.path, rootKey: key).databaseExists == false)
        #expect(try SpikeDatabase.check(path: f.path, candidate: key) == .missing)
        _ = try SpikeDatabaseWriter(path: f.path, rootKey: key)
        let state = try SpikeDatabase.load(path: f.path, rootKey: key)
        #expect(state.databaseExists && state.secretCount == 0 && state.policyCount == 0)
        #expect(try SpikeDatabase.check(path: f.path, candidate: key) == .empty)
    }

    @Test func keyCheck() throws {
        let f = try Fixture()
        let key = randomKey()
        do {
            let w = try SpikeDatabaseWriter(path: f.path, rootKey: key)
            try w.putPolicy(name: "only-policy", spiffeIDPattern: ".*", pathPattern: ".*", permissions: ["read"], created: 1, updated: 1)
        }
        #expect(try SpikeDatabase.check(path: f.path, candidate: key) == .opens(rows: ["policies[name=\"only-policy\"]"]))
        #expect(try SpikeDatabase.check(path: f.path, candidate: randomKey()) == .doesNotOpen(row: "policies[name=\"only-policy\"]"))
        do {
            let w = try SpikeDatabaseWriter(path: f.path, rootKey: key)
            try w.putSecret(path: "s", versions: [.init(version: 1, data: ["k": "v"], created: t0)], created: t0, updated: t0)
        }
        #expect(try SpikeDatabase.check(path: f.path, candidate: key)
                == .opens(rows: ["secrets[path=\"s\", version=1]", "secret_metadata[path=\"s\"]", "policies[name=\"only-policy\"]"]))
    }
}

/// The warm-up must take the same paths as a real key check and load, or it
/// warms nothing: its in-memory store opens under its key, row by row.
@Suite struct WarmUpTests {
    @Test func theWarmUpStoreIsCheckedAndLoadedLikeARealOne() throws {
        let (db, key) = try #require(SpikeDatabase.warmUpStore())
        #expect(try SpikeDatabase.check(db, key: key)
                == .opens(rows: ["secrets[path=\"warm-up\", version=1]", "secret_metadata[path=\"warm-up\"]", "policies[name=\"warm-up\"]"]))
        let state = try SpikeDatabase.load(db, key: key)
        #expect(state.secrets.count == 1 && state.policies.count == 1)
        #expect(state.secrets["warm-up"]?.metadata?.currentVersion == 1)
        #expect(state.policies["warm-up"]?.permissions == ["read"])
    }

    @Test func rowLabelsEscapeQuotes() {
        #expect(SpikeDatabase.quoted("a\"b\\c") == "\"a\\\"b\\c\"")
        #expect(SpikeDatabase.quoted("日本 🔑") == "\"日本 🔑\"")
    }
}

@Suite struct BackingStoreErrorTests {
    func seeded() throws -> (Fixture, SecretBytes, SpikeDatabaseWriter) {
        let f = try Fixture()
        let key = randomKey()
        let w = try SpikeDatabaseWriter(path: f.path, rootKey: key)
        try w.putSecret(path: "db/creds", versions: [.init(version: 1, data: ["password": "hunter2-plaintext"], created: t0)], created: t0, updated: t0)
        try w.putPolicy(name: "p", spiffeIDPattern: ".*", pathPattern: ".*", permissions: ["read"], created: 1, updated: 1)
        return (f, key, w)
    }

    func loadError(_ f: Fixture, _ key: SecretBytes) -> BackingStoreError? {
        do {
            _ = try SpikeDatabase.load(path: f.path, rootKey: key)
            return nil
        } catch {
            #expect(!"\(error)".contains("hunter2"))
            return error
        }
    }

    @Test func wrongKeyNamesTheRow() throws {
        let (f, _, _) = try seeded()
        #expect(loadError(f, randomKey()) == .tagMismatch(row: "secret_metadata[path=\"db/creds\"]"))
    }

    @Test func damagedRows() throws {
        var (f, key, w) = try seeded()
        try w.execute("UPDATE secrets SET encrypted_data = X'0102' WHERE path = 'db/creds'")
        #expect(loadError(f, key) == .truncated(row: "secrets[path=\"db/creds\", version=1]", column: "encrypted_data"))
        (f, key, w) = try seeded()
        try w.execute("UPDATE secrets SET nonce = X'010203' WHERE path = 'db/creds'")
        #expect(loadError(f, key) == .badNonce(row: "secrets[path=\"db/creds\", version=1]", length: 3))
        (f, key, w) = try seeded()
        // Change the first ciphertext byte: to 0x00, or to 0x01 where it is 0x00 already, so that the row always changes.
        try w.execute("UPDATE secrets SET encrypted_data = CAST((CASE WHEN substr(encrypted_data, 1, 1) = X'00' THEN X'01' ELSE X'00' END) || substr(encrypted_data, 2) AS BLOB) WHERE path = 'db/creds'")
        #expect(loadError(f, key) == .tagMismatch(row: "secrets[path=\"db/creds\", version=1]"))
        (f, key, w) = try seeded()
        try w.execute("DROP TABLE policies")
        #expect(loadError(f, key) == .missingTable("policies"))
    }

    @Test func plaintextThatIsNotAnObjectOfStrings() throws {
        let f = try Fixture()
        let key = randomKey()
        let w = try SpikeDatabaseWriter(path: f.path, rootKey: key)
        try w.putSecret(path: "ok", versions: [.init(version: 1, data: ["a": "b"], created: t0)], created: t0, updated: t0)
        // Replace the row with a sealed JSON array, as a broken writer would.
        let nonce = [UInt8](repeating: 7, count: 12)
        let sealed = try w.seal(Array("[\"not\",\"an\",\"object\"]".utf8), nonce: nonce)
        let update = try w.connection.prepare("UPDATE secrets SET nonce = ?, encrypted_data = ? WHERE path = 'ok'")
        try update.bind(1, nonce)
        try update.bind(2, sealed)
        _ = try update.step()
        #expect(loadError(f, key) == .notAnObjectOfStrings(row: "secrets[path=\"ok\", version=1]"))
    }

    @Test func notADatabaseAndLocked() throws {
        let f = try Fixture()
        try Data("this is not sqlite, just text that is long enough to look like a header".utf8).write(to: URL(fileURLWithPath: f.path))
        #expect(loadError(f, randomKey()) == .notADatabase(path: f.path))
        let (g, key, w) = try seeded()
        try w.execute("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE; UPDATE policies SET updated_time = 2;")
        let started = Date()
        #expect(loadError(g, key) == .locked(path: g.path))
        #expect(Date().timeIntervalSince(started) < 20)  // the busy timeout is 5 s; far below "waits forever"
        try w.execute("ROLLBACK")
    }
}

/// The drill's reads: an idle WAL database is read without creating its
/// `-wal` and `-shm`; a database in use is read through them (rows still in
/// the write-ahead log are seen), and odd paths are URI-encoded.
@Suite struct LeavingNoFilesTests {
    func files(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("data").path)) ?? []).sorted()
    }

    @Test func anIdleDatabaseGetsNoNewFiles() throws {
        let f = try Fixture()
        let key = randomKey()
        do {
            let w = try SpikeDatabaseWriter(path: f.path, rootKey: key)
            try w.putSecret(path: "a", versions: [.init(version: 1, data: ["k": "v"], created: t0)], created: t0, updated: t0)
        }
        #expect(files(f.dir) == ["spike.db"])
        let before = try checksum(f.path)
        guard case .opens = try SpikeDatabase.check(path: f.path, candidate: key, leavingNoFiles: true) else {
            Issue.record("the right key did not open the store")
            return
        }
        guard case .doesNotOpen = try SpikeDatabase.check(path: f.path, candidate: randomKey(), leavingNoFiles: true) else {
            Issue.record("a wrong key opened the store")
            return
        }
        #expect(files(f.dir) == ["spike.db"])
        #expect(try checksum(f.path) == before)
        // The recovery's plain read-only open is what creates them (SQLite needs a -shm for WAL reads).
        _ = try SpikeDatabase.check(path: f.path, candidate: key)
        #expect(files(f.dir) == ["spike.db", "spike.db-shm", "spike.db-wal"])
    }

    @Test func aDatabaseInUseIsReadThroughItsLog() throws {
        let f = try Fixture()
        let key = randomKey()
        let w = try SpikeDatabaseWriter(path: f.path, rootKey: key)
        try w.execute("PRAGMA wal_autocheckpoint=0;")
        try w.putSecret(path: "only-in-the-log", versions: [.init(version: 1, data: ["k": "v"], created: t0)], created: t0, updated: t0)
        #expect(files(f.dir).contains("spike.db-wal"))
        // Read as immutable, the main file alone would be empty; through the log the row is there.
        guard case .opens(let rows) = try SpikeDatabase.check(path: f.path, candidate: key, leavingNoFiles: true) else {
            Issue.record("the row in the write-ahead log was not seen")
            return
        }
        #expect(rows.contains { $0.contains("only-in-the-log") })
        _ = w
    }

    /// A write-ahead log left without its index (a crashed writer) is not
    /// completed by a `-shm` of ours: the main file is read as it stands.
    @Test func anOrphanedLogGetsNoIndex() throws {
        let f = try Fixture()
        let key = randomKey()
        do {
            let w = try SpikeDatabaseWriter(path: f.path, rootKey: key)
            try w.putSecret(path: "a", versions: [.init(version: 1, data: ["k": "v"], created: t0)], created: t0, updated: t0)
        }
        _ = FileManager.default.createFile(atPath: f.path + "-wal", contents: Data())
        guard case .opens = try SpikeDatabase.check(path: f.path, candidate: key, leavingNoFiles: true) else {
            Issue.record("the right key did not open the store")
            return
        }
        #expect(files(f.dir) == ["spike.db", "spike.db-wal"])
    }

    @Test func pathsAreEncodedForTheURI() throws {
        #expect(SQLiteConnection.immutableURI("/a b/c?d#e%f/spike.db") == "file:///a%20b/c%3Fd%23e%25f/spike.db?immutable=1")
        #expect(SQLiteConnection.immutableURI("//srv/spike.db") == "file:////srv/spike.db?immutable=1")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("odd ?#% dir-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("spike.db").path
        let key = randomKey()
        do {
            let w = try SpikeDatabaseWriter(path: path, rootKey: key)
            try w.putPolicy(name: "p", spiffeIDPattern: "^x$", pathPattern: "^y$", permissions: ["read"], created: 1, updated: 1)
        }
        guard case .opens = try SpikeDatabase.check(path: path, candidate: key, leavingNoFiles: true) else {
            Issue.record("a path with URI characters was not opened")
            return
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["spike.db"])
    }
}

/// The connection opened ahead (`StoreReader.prepare`) answers as a fresh
/// open of the path would: the same verdicts, and a file that was replaced,
/// removed or never a database after (or before) preparing is met as it is now.
@Suite struct StoreReaderTests {
    func store(_ path: String, key: SecretBytes, policy: String) throws {
        let w = try SpikeDatabaseWriter(path: path, rootKey: key)
        try w.putPolicy(name: policy, spiffeIDPattern: ".*", pathPattern: ".*", permissions: ["read"], created: 1, updated: 1)
    }

    /// A store with one policy under `key`, and a reader that has opened it ahead.
    func prepared(_ f: Fixture, key: SecretBytes, policy: String) throws -> StoreReader {
        try store(f.path, key: key, policy: policy)
        let reader = StoreReader(path: f.path)
        reader.prepareNow()
        #expect(reader.isPrepared)
        return reader
    }

    @Test func aPreparedConnectionChecksAndLoadsAsTheFileDoes() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let key = randomKey()
        let reader = try prepared(f, key: key, policy: "p")
        #expect(try reader.check(candidate: randomKey()) == .doesNotOpen(row: "policies[name=\"p\"]"))
        #expect(try reader.check(candidate: key) == SpikeDatabase.check(path: f.path, candidate: key))
        #expect(reader.isPrepared)
        let state = try reader.load(rootKey: key)
        #expect(state.databaseExists && state.policyCount == 1)
        #expect(!reader.isPrepared)
        reader.prepareNow()  // after the load nothing is opened again
        #expect(!reader.isPrepared)
    }

    @Test func aFileReplacedAfterPreparingIsReadAsItIsNow() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let old = randomKey(), new = randomKey()
        let reader = try prepared(f, key: old, policy: "old")
        let other = f.dir.appendingPathComponent("other.db").path
        try store(other, key: new, policy: "new")
        #expect(rename(other, f.path) == 0)
        #expect(try reader.check(candidate: new) == .opens(rows: ["policies[name=\"new\"]"]))
        #expect(!reader.isPrepared)
        #expect(try reader.check(candidate: old) == .doesNotOpen(row: "policies[name=\"new\"]"))
    }

    @Test func aFileRemovedAfterPreparingIsMissing() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let key = randomKey()
        let reader = try prepared(f, key: key, policy: "p")
        try FileManager.default.removeItem(atPath: f.path)
        #expect(try reader.check(candidate: key) == .missing)
        #expect(try reader.load(rootKey: key).databaseExists == false)
    }

    @Test func nothingIsPreparedFromAMissingFileOrOneThatIsNotADatabase() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let reader = StoreReader(path: f.path)
        reader.prepareNow()
        #expect(!reader.isPrepared)
        #expect(try reader.check(candidate: randomKey()) == .missing)
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: f.path))
        reader.prepareNow()
        #expect(!reader.isPrepared)
        var viaReader: BackingStoreError?
        do { _ = try reader.check(candidate: randomKey()) } catch { viaReader = error }
        #expect(viaReader == .notADatabase(path: f.path))
    }
}
