import BackingStore
import BackingStoreWriter
import Crypto
import Foundation
import SecureMemory
import Testing

// Fixed test keys (never real root keys): bytes 1…32, and another one.
let keyBytes: [UInt8] = Array(1...32)
let otherKeyBytes: [UInt8] = (1...32).map { UInt8(200 - $0) }
func testKey() -> SecretBytes { SecretBytes(copying: keyBytes) }
func otherKey() -> SecretBytes { SecretBytes(copying: otherKeyBytes) }

// Whole seconds and a binary fraction, so the text form is exact.
let created = Date(timeIntervalSince1970: 1_700_000_000.25)  // 2023-11-14 22:13:20.25 UTC
let updated = Date(timeIntervalSince1970: 1_700_000_600)

func bytes(_ s: SecretBytes) -> [UInt8] { s.withUnsafeBytes { Array($0) } }
func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Runs `body` with `<fresh temp dir>/data/spike.db` (the directory not yet
/// created), then removes the temp directory whatever happened.
func withDatabasePath<R>(_ body: (String) throws -> R) throws -> R {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spike-writer-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    return try body(dir.appendingPathComponent("data").appendingPathComponent("spike.db").path)
}

/// Every row of a read-only query, mapped by `row`.
func queryRows<T>(_ path: String, _ sql: String, _ row: (SQLiteStatement) -> T) throws -> [T] {
    let db = try SQLiteConnection(path: path, mode: .readOnly)
    let statement = try db.prepare(sql)
    var out: [T] = []
    while try statement.step() { out.append(row(statement)) }
    return out
}

/// The first `count` columns of the current row, as blobs.
func blobs(_ s: SQLiteStatement, count: Int) -> [[UInt8]] {
    (0..<count).map { column in s.withBlob(Int32(column)) { Array($0) } }
}

/// AES-256-GCM open of `ciphertext ‖ tag`, done here with swift-crypto directly,
/// so the writer is checked against the spec and not only against our reader.
func openSealed(_ sealed: [UInt8], nonce: [UInt8], key: [UInt8] = keyBytes) throws -> [UInt8] {
    let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: Array(sealed.dropLast(16)), tag: Array(sealed.suffix(16)))
    let plain = try AES.GCM.open(box, using: SymmetricKey(data: key))
    return Array(plain)
}

/// A small store: one secret with a deleted and two live versions, one policy.
func writeSample(_ path: String) throws {
    let w = try SpikeDatabaseWriter(path: path, rootKey: testKey())
    try w.putSecret(path: "alpha", versions: [
        .init(version: 1, data: ["user": "u1"], created: created, deleted: updated),
        .init(version: 2, data: ["user": "u2", "html": "<&>"], created: created),
        .init(version: 3, data: ["user": "u3"], created: updated),
    ], maxVersions: 7, created: created, updated: updated)
    try w.putPolicy(name: "readers", spiffeIDPattern: "^spiffe://spike\\.ist/app$", pathPattern: "^alpha$",
                    permissions: ["read", "list"], created: 1_700_000_000, updated: 1_700_000_100)
}

// MARK: - File, mode and schema

@Suite struct WriterSchemaTests {
    struct Column: Equatable, CustomStringConvertible {
        let name: String, type: String, notNull: Bool, primaryKeyPosition: Int64
        var description: String { "\(name) \(type)\(notNull ? " NOT NULL" : "") pk\(primaryKeyPosition)" }
    }

    func columns(_ path: String, _ table: String) throws -> [Column] {
        try queryRows(path, "PRAGMA table_info(\(table))") {
            Column(name: $0.text(1) ?? "", type: $0.text(2) ?? "", notNull: $0.int64(3) != 0, primaryKeyPosition: $0.int64(5))
        }
    }

    @Test func createsTheDirectoryAndUsesWAL() throws {
        try withDatabasePath { path in
            let dataDir = (path as NSString).deletingLastPathComponent
            #expect(!FileManager.default.fileExists(atPath: dataDir))
            let w = try SpikeDatabaseWriter(path: path, rootKey: testKey())
            #expect(FileManager.default.fileExists(atPath: path))
            // Go opens the database in WAL mode; the mode is stored in the file.
            let mode = try w.connection.prepare("PRAGMA journal_mode")
            #expect(try mode.step())
            #expect(mode.text(0) == "wal")
        }
    }

    /// The tables, columns, types, NOT NULLs, keys and indexes of backing-store.md.
    @Test func schemaIsGoSpikes() throws {
        try withDatabasePath { path in
            _ = try SpikeDatabaseWriter(path: path, rootKey: testKey())
            let tables = try queryRows(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") { $0.text(0) ?? "" }
            #expect(tables == ["policies", "secret_metadata", "secrets"])

            #expect(try columns(path, "policies") == [
                Column(name: "name", type: "TEXT", notNull: false, primaryKeyPosition: 1),
                Column(name: "nonce", type: "BLOB", notNull: true, primaryKeyPosition: 0),
                Column(name: "encrypted_spiffe_id_pattern", type: "BLOB", notNull: true, primaryKeyPosition: 0),
                Column(name: "encrypted_path_pattern", type: "BLOB", notNull: true, primaryKeyPosition: 0),
                Column(name: "encrypted_permissions", type: "BLOB", notNull: true, primaryKeyPosition: 0),
                Column(name: "created_time", type: "INTEGER", notNull: true, primaryKeyPosition: 0),
                Column(name: "updated_time", type: "INTEGER", notNull: true, primaryKeyPosition: 0),
            ])
            #expect(try columns(path, "secrets") == [
                Column(name: "path", type: "TEXT", notNull: true, primaryKeyPosition: 1),
                Column(name: "version", type: "INTEGER", notNull: true, primaryKeyPosition: 2),
                Column(name: "nonce", type: "BLOB", notNull: true, primaryKeyPosition: 0),
                Column(name: "encrypted_data", type: "BLOB", notNull: true, primaryKeyPosition: 0),
                Column(name: "created_time", type: "DATETIME", notNull: true, primaryKeyPosition: 0),
                Column(name: "deleted_time", type: "DATETIME", notNull: false, primaryKeyPosition: 0),
            ])
            #expect(try columns(path, "secret_metadata") == [
                Column(name: "path", type: "TEXT", notNull: false, primaryKeyPosition: 1),
                Column(name: "nonce", type: "BLOB", notNull: true, primaryKeyPosition: 0),
                Column(name: "encrypted_current_version", type: "BLOB", notNull: true, primaryKeyPosition: 0),
                Column(name: "encrypted_oldest_version", type: "BLOB", notNull: true, primaryKeyPosition: 0),
                Column(name: "encrypted_created_time", type: "BLOB", notNull: true, primaryKeyPosition: 0),
                Column(name: "encrypted_updated_time", type: "BLOB", notNull: true, primaryKeyPosition: 0),
                Column(name: "encrypted_max_versions", type: "BLOB", notNull: true, primaryKeyPosition: 0),
            ])
            // The two named indexes on secrets (autoindexes of the primary keys aside).
            let indexes = try queryRows(path, "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name") {
                "\($0.text(0) ?? "") on \($0.text(1) ?? "")"
            }
            #expect(indexes == ["idx_secrets_created_time on secrets", "idx_secrets_path on secrets"])
            let pathIndex = try queryRows(path, "PRAGMA index_info(idx_secrets_path)") { $0.text(2) ?? "" }
            let timeIndex = try queryRows(path, "PRAGMA index_info(idx_secrets_created_time)") { $0.text(2) ?? "" }
            #expect(pathIndex == ["path"])
            #expect(timeIndex == ["created_time"])
        }
    }

    /// Opening an existing store again keeps its rows (CREATE … IF NOT EXISTS).
    @Test func reopeningKeepsTheData() throws {
        try withDatabasePath { path in
            try writeSample(path)
            _ = try SpikeDatabaseWriter(path: path, rootKey: testKey())
            let state = try SpikeDatabase.load(path: path, rootKey: testKey())
            #expect(state.secretCount == 1 && state.versionCount == 3 && state.policyCount == 1)
        }
    }
}

// MARK: - What the rows hold

@Suite struct WriterRowTests {
    /// Secrets: one fresh nonce per row; plaintext is Go's JSON of the map.
    @Test func secretRowsDecryptToGoJSON() throws {
        try withDatabasePath { path in
            try writeSample(path)
            struct Row {
                let version: Int64, nonce: [UInt8], sealed: [UInt8], created: String?, deleted: String?
            }
            let rows: [Row] = try queryRows(path, "SELECT version, nonce, encrypted_data, created_time, deleted_time FROM secrets WHERE path = 'alpha' ORDER BY version") { s in
                Row(version: s.int64(0), nonce: s.withBlob(1) { Array($0) }, sealed: s.withBlob(2) { Array($0) },
                    created: s.text(3), deleted: s.isNull(4) ? nil : s.text(4))
            }
            #expect(rows.map(\.version) == [1, 2, 3])
            #expect(rows.allSatisfy { $0.nonce.count == 12 })
            #expect(Set(rows.map(\.nonce)).count == 3)
            let plaintexts = try rows.map { try openSealed($0.sealed, nonce: $0.nonce) }
            #expect(plaintexts[0] == utf8(#"{"user":"u1"}"#))
            // Keys sorted, <, & and > escaped the way Go does.
            #expect(plaintexts[1] == utf8(#"{"html":"\u003c\u0026\u003e","user":"u2"}"#))
            #expect(rows.map(\.sealed.count) == plaintexts.map { $0.count + 16 })
            #expect(rows.map(\.created) == ["2023-11-14 22:13:20.25+00:00", "2023-11-14 22:13:20.25+00:00", "2023-11-14 22:23:20+00:00"])
            #expect(rows.map(\.deleted) == ["2023-11-14 22:23:20+00:00", nil, nil])
            // The wrong key does not open a row.
            #expect(throws: (any Error).self) { _ = try openSealed(rows[0].sealed, nonce: rows[0].nonce, key: otherKeyBytes) }
        }
    }

    /// Metadata: a base nonce per row, each field sealed under base XOR its 12-byte salt.
    @Test func metadataFieldsUseSaltedNonces() throws {
        try withDatabasePath { path in
            try writeSample(path)
            let salts = ["current_ver_", "oldest_ver__", "created_tim_", "updated_tim_", "max_versions"].map(utf8)
            #expect(salts.allSatisfy { $0.count == 12 })
            let rows: [[[UInt8]]] = try queryRows(path, """
                SELECT nonce, encrypted_current_version, encrypted_oldest_version, encrypted_created_time,
                       encrypted_updated_time, encrypted_max_versions FROM secret_metadata WHERE path = 'alpha'
                """) { s in blobs(s, count: 6) }
            #expect(rows.count == 1)
            let row = try #require(rows.first)
            let base = row[0]
            #expect(base.count == 12)
            var fields: [String] = []
            for (i, salt) in salts.enumerated() {
                let nonce = zip(base, salt).map { $0 ^ $1 }
                fields.append(String(decoding: try openSealed(row[i + 1], nonce: nonce), as: UTF8.self))
                // Not under the base nonce itself.
                #expect(throws: (any Error).self) { _ = try openSealed(row[i + 1], nonce: base) }
            }
            // current = highest live version, oldest = lowest version, times in Unix seconds.
            #expect(fields == ["3", "1", "1700000000", "1700000600", "7"])
        }
    }

    /// Policies: Go seals the three fields under the row's one nonce (kept on
    /// purpose so fixtures match Go's files); times are plain integers.
    @Test func policyRowsShareOneNonce() throws {
        try withDatabasePath { path in
            try writeSample(path)
            struct Row {
                let blobs: [[UInt8]], created: Int64, updated: Int64
            }
            let rows: [Row] = try queryRows(path, """
                SELECT nonce, encrypted_spiffe_id_pattern, encrypted_path_pattern, encrypted_permissions, created_time, updated_time
                FROM policies WHERE name = 'readers'
                """) { s in Row(blobs: blobs(s, count: 4), created: s.int64(4), updated: s.int64(5)) }
            #expect(rows.count == 1)
            let row = try #require(rows.first)
            let nonce = row.blobs[0]
            #expect(nonce.count == 12)
            #expect(try openSealed(row.blobs[1], nonce: nonce) == utf8("^spiffe://spike\\.ist/app$"))
            #expect(try openSealed(row.blobs[2], nonce: nonce) == utf8("^alpha$"))
            #expect(try openSealed(row.blobs[3], nonce: nonce) == utf8("read,list"))
            #expect(row.created == 1_700_000_000 && row.updated == 1_700_000_100)
        }
    }
}

// MARK: - Read back with BackingStore

@Suite struct WriterRoundTripTests {
    @Test func everythingLoadsBack() throws {
        try withDatabasePath { path in
            do {
                try writeSample(path)
                let w = try SpikeDatabaseWriter(path: path, rootKey: testKey())
                try w.putSecret(path: "beta/empty", versions: [.init(version: 4, data: [:], created: created)], created: created, updated: created)
                try w.putPolicy(name: "nobody", spiffeIDPattern: "^$", pathPattern: "^$", permissions: [], created: 5, updated: 6)
            }
            let state = try SpikeDatabase.load(path: path, rootKey: testKey())
            #expect(state.databaseExists)
            #expect(state.secretCount == 2)
            #expect(state.versionCount == 4)
            #expect(state.policyCount == 2)

            let alpha = try #require(state.secrets["alpha"])
            #expect(alpha.path == "alpha")
            #expect(alpha.versions.keys.sorted() == [1, 2, 3])
            let v1 = try #require(alpha.versions[1]), v2 = try #require(alpha.versions[2])
            #expect(v1.isDeleted && v1.deletedTime == "2023-11-14 22:23:20+00:00")
            #expect(!v2.isDeleted && v2.deletedTime == nil)
            #expect(v2.createdTime == "2023-11-14 22:13:20.25+00:00")
            // The data comes back in Go's key order, values decoded from the escapes.
            #expect(v2.data.map(\.key) == ["html", "user"])
            #expect(v2.data.map { bytes($0.value) } == [utf8("<&>"), utf8("u2")])
            let meta = try #require(alpha.metadata)
            #expect(meta.currentVersion == 3)
            #expect(meta.oldestVersion == 1)
            #expect(meta.createdTime == 1_700_000_000)
            #expect(meta.updatedTime == 1_700_000_600)
            #expect(meta.maxVersions == 7)

            let empty = try #require(state.secrets["beta/empty"]?.versions[4])
            #expect(empty.data.isEmpty)
            #expect(state.secrets["beta/empty"]?.metadata?.maxVersions == 10)  // the default

            let readers = try #require(state.policies["readers"])
            #expect(readers.name == "readers")
            #expect(readers.spiffeIDPattern == "^spiffe://spike\\.ist/app$")
            #expect(readers.pathPattern == "^alpha$")
            #expect(readers.permissions == ["read", "list"])
            #expect(readers.createdTime == 1_700_000_000 && readers.updatedTime == 1_700_000_100)
            #expect(state.policies["nobody"]?.permissions == [])
        }
    }

    /// Writing a (path, version) again replaces that row, it does not add one.
    @Test func rewritingReplacesRows() throws {
        try withDatabasePath { path in
            do {
                let w = try SpikeDatabaseWriter(path: path, rootKey: testKey())
                try w.putSecret(path: "p", versions: [.init(version: 1, data: ["k": "old"], created: created)], created: created, updated: created)
                try w.putSecret(path: "p", versions: [.init(version: 1, data: ["k": "new"], created: created)], created: created, updated: updated)
                try w.putPolicy(name: "q", spiffeIDPattern: "a", pathPattern: "b", permissions: ["read"], created: 1, updated: 1)
                try w.putPolicy(name: "q", spiffeIDPattern: "c", pathPattern: "d", permissions: ["write"], created: 1, updated: 2)
            }
            let state = try SpikeDatabase.load(path: path, rootKey: testKey())
            #expect(state.versionCount == 1 && state.policyCount == 1)
            #expect(state.secrets["p"]?.versions[1]?.data.map { bytes($0.value) } == [utf8("new")])
            #expect(state.secrets["p"]?.metadata?.updatedTime == 1_700_000_600)
            #expect(state.policies["q"]?.spiffeIDPattern == "c" && state.policies["q"]?.permissions == ["write"])
        }
    }

    /// Bulk fixtures: many secrets inside one transaction the caller opens.
    @Test func bulkWritesInOneTransaction() throws {
        try withDatabasePath { path in
            do {
                let w = try SpikeDatabaseWriter(path: path, rootKey: testKey())
                try w.execute("BEGIN")
                for i in 0..<200 {
                    try w.putSecretInTransaction(path: "bulk/\(i)", versions: [
                        .init(version: 1, data: ["n": "\(i)"], created: created),
                        .init(version: 2, data: ["n": "\(i)b"], created: updated),
                    ], created: created, updated: updated)
                }
                try w.execute("COMMIT")
            }
            let state = try SpikeDatabase.load(path: path, rootKey: testKey())
            #expect(state.secretCount == 200)
            #expect(state.versionCount == 400)
            #expect(state.secrets.values.allSatisfy { $0.metadata?.currentVersion == 2 })
            #expect(state.secrets["bulk/123"]?.versions[2]?.data.map { bytes($0.value) } == [utf8("123b")])
        }
    }
}

// MARK: - The key check

@Suite struct WriterKeyTests {
    @Test func onlyTheRightKeyOpensTheStore() throws {
        try withDatabasePath { path in
            try writeSample(path)
            #expect(try SpikeDatabase.check(path: path, candidate: testKey())
                    == .opens(rows: [#"secrets[path="alpha", version=1]"#, #"secret_metadata[path="alpha"]"#, #"policies[name="readers"]"#]))
            #expect(try SpikeDatabase.check(path: path, candidate: otherKey()) == .doesNotOpen(row: #"secrets[path="alpha", version=1]"#))
            // One flipped bit is as wrong as any other key.
            var nearly = keyBytes
            nearly[31] ^= 1
            #expect(try SpikeDatabase.check(path: path, candidate: SecretBytes(copying: nearly)) == .doesNotOpen(row: #"secrets[path="alpha", version=1]"#))
            #expect(throws: BackingStoreError.tagMismatch(row: #"secret_metadata[path="alpha"]"#)) {
                _ = try SpikeDatabase.load(path: path, rootKey: otherKey())
            }
            #expect(throws: BackingStoreError.badKey) { _ = try SpikeDatabase.load(path: path, rootKey: SecretBytes(copying: Array(keyBytes.prefix(16)))) }
        }
    }

    @Test func anEmptyStoreIsEmptyNotOpened() throws {
        try withDatabasePath { path in
            _ = try SpikeDatabaseWriter(path: path, rootKey: testKey())
            #expect(try SpikeDatabase.check(path: path, candidate: testKey()) == .empty)
            #expect(try SpikeDatabase.check(path: path, candidate: otherKey()) == .empty)
            let state = try SpikeDatabase.load(path: path, rootKey: testKey())
            #expect(state.databaseExists && state.secretCount == 0 && state.policyCount == 0)
        }
    }
}

// MARK: - Bad input

@Suite struct WriterRefusalTests {
    /// A file that is not SQLite: refused with SQLITE_NOTADB (26), left byte-for-byte as it was.
    @Test func notADatabaseIsRefusedAndUntouched() throws {
        try withDatabasePath { path in
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let original = Data((0..<1024).map { UInt8(ascii: "a") + UInt8($0 % 26) })
            try original.write(to: URL(fileURLWithPath: path))
            let error = #expect(throws: SQLiteError.self) { _ = try SpikeDatabaseWriter(path: path, rootKey: testKey()) }
            #expect(error?.primaryCode == 26)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == original)
        }
    }

    /// A key AES cannot use is refused when the writer is made; earlier rows stay.
    @Test func unusableKeyWritesNothing() throws {
        try withDatabasePath { path in
            try writeSample(path)
            let before = try Data(contentsOf: URL(fileURLWithPath: path))
            #expect(throws: SpikeDatabaseWriter.KeyLengthError(count: 5)) {
                _ = try SpikeDatabaseWriter(path: path, rootKey: SecretBytes(copying: [1, 2, 3, 4, 5]))
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
            let state = try SpikeDatabase.load(path: path, rootKey: testKey())
            #expect(state.secrets.keys.sorted() == ["alpha"])
            #expect(state.policies.keys.sorted() == ["readers"])
            #expect(state.versionCount == 3)
        }
    }

    /// putSecret is one transaction: a failure at the metadata row rolls back
    /// the version rows already inserted, and the writer stays usable.
    @Test func failedPutRollsBackWholly() throws {
        try withDatabasePath { path in
            try writeSample(path)
            do {
                let w = try SpikeDatabaseWriter(path: path, rootKey: testKey())
                try w.execute("""
                    CREATE TRIGGER refuse_beta BEFORE INSERT ON secret_metadata WHEN NEW.path = 'beta'
                    BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END;
                    """)
                let error = #expect(throws: SQLiteError.self) {
                    try w.putSecret(path: "beta", versions: [
                        .init(version: 1, data: ["k": "1"], created: created), .init(version: 2, data: ["k": "2"], created: created),
                    ], created: created, updated: created)
                }
                #expect(error?.primaryCode == 19)  // SQLITE_CONSTRAINT
                #expect(error?.message.contains("refused by the test trigger") == true)
                // No transaction was left open: the next put commits on its own.
                try w.putSecret(path: "gamma", versions: [.init(version: 1, data: ["k": "g"], created: created)], created: created, updated: created)
                try w.execute("DROP TRIGGER refuse_beta")
            }
            let betaRows = try queryRows(path, "SELECT count(*) FROM secrets WHERE path = 'beta'") { $0.int64(0) }
            #expect(betaRows == [0])
            let state = try SpikeDatabase.load(path: path, rootKey: testKey())
            #expect(state.secrets.keys.sorted() == ["alpha", "gamma"])
            #expect(state.versionCount == 4)
        }
    }

    /// SPIKE root keys are 32 bytes and the reader refuses any other size, but
    /// the writer hands 16- and 24-byte keys to AES (AES-128/192) and writes a
    /// store no SPIKE reader opens. Known issue until the writer checks the
    /// length; then this fails and the wrapper should go.
    @Test func keysOtherThan32BytesAreRefused() throws {
        try withDatabasePath { path in
            for count in [16, 24, 31, 33] {
                let key = SecretBytes(copying: Array((keyBytes + keyBytes).prefix(count)))
                #expect(throws: SpikeDatabaseWriter.KeyLengthError(count: count)) {
                    _ = try SpikeDatabaseWriter(path: path, rootKey: key)
                }
                #expect(!FileManager.default.fileExists(atPath: path), "a refused key left a file")
            }
        }
    }
}

// MARK: - Go's text formats

@Suite struct GoFormatTests {
    @Test func goTime() {
        #expect(SpikeDatabaseWriter.goTime(Date(timeIntervalSince1970: 1_700_000_000)) == "2023-11-14 22:13:20+00:00")
        #expect(SpikeDatabaseWriter.goTime(created) == "2023-11-14 22:13:20.25+00:00")
        // A leap day, and a time before the epoch (floor, then the fraction).
        #expect(SpikeDatabaseWriter.goTime(Date(timeIntervalSince1970: 1_709_208_000)) == "2024-02-29 12:00:00+00:00")
        #expect(SpikeDatabaseWriter.goTime(Date(timeIntervalSince1970: -1.5)) == "1969-12-31 23:59:58.5+00:00")
        #expect(SpikeDatabaseWriter.goTime(Date(timeIntervalSince1970: 0.125)) == "1970-01-01 00:00:00.125+00:00")
    }

    @Test func goJSON() {
        #expect(SpikeDatabaseWriter.goJSON([:]) == "{}")
        // Go sorts keys bytewise (UTF-8 order = code point order).
        #expect(SpikeDatabaseWriter.goJSON(["b": "1", "a": "2", "B": "3"]) == #"{"B":"3","a":"2","b":"1"}"#)
        #expect(SpikeDatabaseWriter.goJSON(["😀": "", "ｱ": "", "é": "", "z": ""]) == #"{"z":"","é":"","ｱ":"","😀":""}"#)
        // HTML-safe escaping applies to keys and values; U+2028/2029 are escaped too.
        #expect(SpikeDatabaseWriter.goJSON(["<k>": "a&b", "s": "x\u{2028}y\u{2029}"]) == #"{"\u003ck\u003e":"a\u0026b","s":"x\u2028y\u2029"}"#)
        #expect(SpikeDatabaseWriter.goJSON(["q": "\"\\\n"]) == #"{"q":"\"\\\n"}"#)
    }
}
