import CSQLite
import Crypto
import Foundation
import SecretJSON
import SecureMemory

/// Why the database could not be read. Names the table and row key, never plaintext.
public enum BackingStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    case notADatabase(path: String)
    case locked(path: String)
    case unreadable(path: String, reason: String)
    case missingTable(String)
    case tagMismatch(row: String)
    case truncated(row: String, column: String)
    case badNonce(row: String, length: Int)
    case notAnObjectOfStrings(row: String)
    case badField(row: String, field: String)
    case badKey

    public var description: String {
        switch self {
        case .notADatabase(let p): "\(p): not an SQLite database"
        case .locked(let p): "\(p): database is locked by another process"
        case .unreadable(let p, let r): "\(p): \(r)"
        case .missingTable(let t): "table \(t) is missing (not a SPIKE database?)"
        case .tagMismatch(let row): "\(row): authentication tag does not verify (wrong root key or altered row)"
        case .truncated(let row, let column): "\(row): \(column) is shorter than a GCM tag"
        case .badNonce(let row, let n): "\(row): nonce is \(n) bytes, expected 12"
        case .notAnObjectOfStrings(let row): "\(row): decrypted data is not a JSON object of strings"
        case .badField(let row, let field): "\(row): \(field) is not a decimal number"
        case .badKey: "root key must be 32 bytes"
        }
    }
}

/// Reads SPIKE Nexus's SQLite database (Spec: ../shared/spec/backing-store.md,
/// summarised in Spec/backing-store.md): opened read-only, never modified.
/// AES-256-GCM under the root key itself, 12-byte nonces, tag appended.
public enum SpikeDatabase {
    public static let nonceByteCount = 12
    public static let tagByteCount = 16
    /// The salts Go XORs into a metadata row's base nonce, one per field, in column order.
    public static let metadataSalts: [(column: String, salt: [UInt8])] = [
        ("encrypted_current_version", Array("current_ver_".utf8)),
        ("encrypted_oldest_version", Array("oldest_ver__".utf8)),
        ("encrypted_created_time", Array("created_tim_".utf8)),
        ("encrypted_updated_time", Array("updated_tim_".utf8)),
        ("encrypted_max_versions", Array("max_versions".utf8)),
    ]

    /// The tables and indexes Go SPIKE Nexus creates (backing-store.md): what
    /// `SpikeDatabaseWriter` writes, and what the warm-up builds in memory.
    public static let schema = """
        CREATE TABLE IF NOT EXISTS policies (
            name TEXT PRIMARY KEY, nonce BLOB NOT NULL, encrypted_spiffe_id_pattern BLOB NOT NULL,
            encrypted_path_pattern BLOB NOT NULL, encrypted_permissions BLOB NOT NULL,
            created_time INTEGER NOT NULL, updated_time INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS secrets (
            path TEXT NOT NULL, version INTEGER NOT NULL, nonce BLOB NOT NULL,
            encrypted_data BLOB NOT NULL, created_time DATETIME NOT NULL, deleted_time DATETIME,
            PRIMARY KEY (path, version));
        CREATE TABLE IF NOT EXISTS secret_metadata (
            path TEXT PRIMARY KEY, nonce BLOB NOT NULL,
            encrypted_current_version BLOB NOT NULL, encrypted_oldest_version BLOB NOT NULL,
            encrypted_created_time BLOB NOT NULL, encrypted_updated_time BLOB NOT NULL,
            encrypted_max_versions BLOB NOT NULL);
        CREATE INDEX IF NOT EXISTS idx_secrets_path ON secrets(path);
        CREATE INDEX IF NOT EXISTS idx_secrets_created_time ON secrets(created_time);
        """

    /// `<dataDir>/spike.db`.
    public static func path(dataDirectory: String) -> String { (dataDirectory as NSString).appendingPathComponent("spike.db") }

    // MARK: load (step 9)

    /// Loads and decrypts every row. A missing file is "no data yet" (empty state).
    public static func load(path: String, rootKey: SecretBytes) throws(BackingStoreError) -> NexusState {
        guard FileManager.default.fileExists(atPath: path) else { return .empty }
        let db = try open(path)
        return try load(db, key: try symmetricKey(rootKey))
    }

    /// Every row of an open database, decrypted under `key`.
    static func load(_ db: SQLiteConnection, key: SymmetricKey) throws(BackingStoreError) -> NexusState {
        let metadata = try loadMetadata(db, key: key)
        var versions: [String: [Int: SecretVersion]] = [:]
        try rows(db, table: "secrets", sql: "SELECT path, version, nonce, encrypted_data, created_time, deleted_time FROM secrets ORDER BY path, version") { row throws(BackingStoreError) in
            let path = row.text(0) ?? ""
            let version = Int(row.int64(1))
            // Labels are built only for an error message: most rows never need one.
            let label = { "secrets[path=\(quoted(path)), version=\(version)]" }
            let plain = try decrypt(row, nonceColumn: 2, cipherColumn: 3, columnName: "encrypted_data", key: key, label: label())
            let data: [(key: String, value: SecretBytes)]
            do {
                data = try JSONReader.stringObject(plain)
            } catch {
                throw .notAnObjectOfStrings(row: label())
            }
            versions[path, default: [:]][version] = SecretVersion(
                version: version, data: data, createdTime: row.text(4) ?? "", deletedTime: row.isNull(5) ? nil : row.text(5))
        }
        var secrets: [String: StoredSecret] = [:]
        for path in Set(versions.keys).union(metadata.keys) {
            secrets[path] = StoredSecret(path: path, versions: versions[path] ?? [:], metadata: metadata[path])
        }
        let policies = try loadPolicies(db, key: key)
        return NexusState(secrets: secrets, policies: policies, databaseExists: true)
    }

    /// The metadata query, its columns in `metadataSalts` order.
    static let metadataQuery = "SELECT path, nonce, " + metadataSalts.map { $0.column }.joined(separator: ", ") + " FROM secret_metadata"

    static func loadMetadata(_ db: SQLiteConnection, key: SymmetricKey) throws(BackingStoreError) -> [String: SecretMetadata] {
        var out: [String: SecretMetadata] = [:]
        try rows(db, table: "secret_metadata", sql: metadataQuery) { row throws(BackingStoreError) in
            let path = row.text(0) ?? ""
            let label = { "secret_metadata[path=\(quoted(path))]" }
            var numbers: [Int64] = []
            for (i, (column, salt)) in metadataSalts.enumerated() {
                let plain = try decrypt(row, nonceColumn: 1, cipherColumn: Int32(2 + i), columnName: column, key: key, label: label(), salt: salt)
                guard let n = plain.withUnsafeBytes({ Int64(String(decoding: $0, as: UTF8.self)) }) else {
                    throw .badField(row: label(), field: column)
                }
                numbers.append(n)
            }
            out[path] = SecretMetadata(currentVersion: Int(numbers[0]), oldestVersion: Int(numbers[1]), createdTime: numbers[2],
                                       updatedTime: numbers[3], maxVersions: Int(numbers[4]))
        }
        return out
    }

    static func loadPolicies(_ db: SQLiteConnection, key: SymmetricKey) throws(BackingStoreError) -> [String: StoredPolicy] {
        var out: [String: StoredPolicy] = [:]
        let sql = "SELECT name, nonce, encrypted_spiffe_id_pattern, encrypted_path_pattern, encrypted_permissions, created_time, updated_time FROM policies"
        try rows(db, table: "policies", sql: sql) { row throws(BackingStoreError) in
            let name = row.text(0) ?? ""
            // Go reuses the row's nonce for all three fields; a reader must accept that.
            func field(_ column: Int32, _ columnName: String) throws(BackingStoreError) -> String {
                let plain = try decrypt(row, nonceColumn: 1, cipherColumn: column, columnName: columnName, key: key,
                                        label: "policies[name=\(quoted(name))]")
                return plain.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
            }
            let permissions = try field(4, "encrypted_permissions")
            out[name] = StoredPolicy(
                name: name, spiffeIDPattern: try field(2, "encrypted_spiffe_id_pattern"), pathPattern: try field(3, "encrypted_path_pattern"),
                permissions: permissions.isEmpty ? [] : permissions.split(separator: ",").map(String.init),
                createdTime: row.int64(5), updatedTime: row.int64(6))
        }
        return out
    }

    // MARK: key check (step 7.2)

    /// The store's verdict on a candidate key. "Cannot be read" is not a
    /// verdict: `check` throws for it, and recovery keeps the candidate.
    public enum KeyCheck: Sendable, Equatable {
        /// The candidate opened these authenticated rows (one per non-empty table).
        case opens(rows: [String])
        /// The schema is there but no table holds an encrypted row.
        case empty
        /// There is no database file.
        case missing
        /// The row's tag did not verify under the candidate.
        case doesNotOpen(row: String)
    }

    /// Whether a database file exists at `path` (step 3: a missing store is a
    /// configuration error unless the operator allows an empty one).
    public static func exists(path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// Does `candidate` open the store? The probe records are, for each
    /// non-empty table, the row with the smallest primary key; the key opens
    /// the store when every probe's AES-GCM tag verifies (Spec/recovery.md 7.2).
    /// Throws when the store cannot be read (locked, not a database, a table
    /// missing, a probe row malformed): that says nothing about the key.
    /// With `leavingNoFiles` (the drill), an idle WAL database gets no `-wal`/`-shm` files.
    public static func check(path: String, candidate: SecretBytes, leavingNoFiles: Bool = false) throws(BackingStoreError) -> KeyCheck {
        guard exists(path: path) else { return .missing }
        let db = try open(path, mode: leavingNoFiles ? .readOnlyLeavingNoFiles : .readOnly)
        return try check(db, key: try symmetricKey(candidate))
    }

    /// The probes of `check(path:candidate:)` on an open database.
    static func check(_ db: SQLiteConnection, key: SymmetricKey) throws(BackingStoreError) -> KeyCheck {
        let probes: [(table: String, sql: String, label: (SQLiteStatement) -> String, nonce: Int32, cipher: Int32, salt: [UInt8]?)] = [
            ("secrets", "SELECT path, version, nonce, encrypted_data FROM secrets ORDER BY path, version LIMIT 1",
             { "secrets[path=\(quoted($0.text(0) ?? "")), version=\($0.int64(1))]" }, 2, 3, nil),
            ("secret_metadata", "SELECT path, nonce, encrypted_current_version FROM secret_metadata ORDER BY path LIMIT 1",
             { "secret_metadata[path=\(quoted($0.text(0) ?? ""))]" }, 1, 2, metadataSalts[0].salt),
            ("policies", "SELECT name, nonce, encrypted_spiffe_id_pattern FROM policies ORDER BY name LIMIT 1",
             { "policies[name=\(quoted($0.text(0) ?? ""))]" }, 1, 2, nil),
        ]
        var opened: [String] = []
        for probe in probes {
            var failed: String?
            try rows(db, table: probe.table, sql: probe.sql) { row throws(BackingStoreError) in
                let label = probe.label(row)
                do throws(BackingStoreError) {
                    _ = try decrypt(row, nonceColumn: probe.nonce, cipherColumn: probe.cipher, columnName: "data", key: key, label: label, salt: probe.salt)
                    opened.append(label)
                } catch .tagMismatch {
                    failed = label
                } catch {
                    throw error
                }
            }
            if let failed { return .doesNotOpen(row: failed) }
        }
        return opened.isEmpty ? .empty : .opens(rows: opened)
    }

    /// Runs, once and on nothing secret, the paths a key check (7.2) and a
    /// load (9) take: SQLite's set-up and SQL parser, AES-GCM, and the Swift
    /// code that turns rows into `NexusState`, on an in-memory database with
    /// SPIKE's schema and one row per table sealed under a throwaway random
    /// key. Their first use costs runtime type and conformance look-ups and
    /// lazy initialisation; a nexus pays them on a spare core at process
    /// start, not between the key and "operational".
    public static func warmUp() {
        guard let (db, key) = warmUpStore() else { return }
        _ = try? check(db, key: key)
        _ = try? load(db, key: key)
    }

    /// The warm-up's in-memory database and its throwaway key; nil if SQLite
    /// refused a step (the warm-up is then skipped: it decides nothing).
    static func warmUpStore() -> (SQLiteConnection, SymmetricKey)? {
        guard let db = try? SQLiteConnection(path: ":memory:", mode: .readWriteCreate), (try? db.execute(schema)) != nil else { return nil }
        let key = SymmetricKey(size: .bits256)
        let nonce = [UInt8](repeating: 7, count: nonceByteCount)
        func sealed(_ text: String, salt: [UInt8]? = nil) -> [UInt8]? {
            var n = nonce
            if let salt { for i in 0..<nonceByteCount { n[i] ^= salt[i] } }
            guard let gcmNonce = try? AES.GCM.Nonce(data: n), let box = try? AES.GCM.seal(Array(text.utf8), using: key, nonce: gcmNonce) else { return nil }
            return Array(box.ciphertext) + Array(box.tag)
        }
        func insert(_ sql: String, _ values: [[UInt8]?], texts: [(Int32, String)], integers: [(Int32, Int64)]) -> Bool {
            guard let statement = try? db.prepare(sql) else { return false }
            for (i, value) in values.enumerated() {
                guard let value, (try? statement.bind(Int32(i) + 2, value)) != nil else { return false }
            }
            for (i, text) in texts { guard (try? statement.bind(i, text)) != nil else { return false } }
            for (i, integer) in integers { guard (try? statement.bind(i, integer)) != nil else { return false } }
            return (try? statement.step()) != nil
        }
        let wrote = insert("INSERT INTO secrets (path, nonce, encrypted_data, version, created_time) VALUES (?, ?, ?, ?, ?)",
                           [nonce, sealed("{\"k\":\"v\"}")], texts: [(1, "warm-up"), (5, "2026-01-01T00:00:00Z")], integers: [(4, 1)])
            && insert(metadataInsert, [nonce] + metadataSalts.map { sealed("1", salt: $0.salt) }, texts: [(1, "warm-up")], integers: [])
            && insert("INSERT INTO policies (name, nonce, encrypted_spiffe_id_pattern, encrypted_path_pattern, encrypted_permissions, created_time, updated_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      [nonce, sealed(".*"), sealed(".*"), sealed("read")], texts: [(1, "warm-up")], integers: [(6, 0), (7, 0)])
        return wrote ? (db, key) : nil
    }

    /// Inserts a metadata row (path, nonce, then the fields in `metadataSalts` order); for the warm-up.
    static let metadataInsert = "INSERT INTO secret_metadata (path, nonce, " + metadataSalts.map { $0.column }.joined(separator: ", ")
        + ") VALUES (?, ?, " + metadataSalts.map { _ in "?" }.joined(separator: ", ") + ")"

    // MARK: helpers

    static func open(_ path: String, mode: SQLiteConnection.Mode = .readOnly) throws(BackingStoreError) -> SQLiteConnection {
        do {
            let db = try SQLiteConnection(path: path, mode: mode)
            // Touch the schema now so "not a database" and "locked" surface here.
            _ = try db.prepare("SELECT name FROM sqlite_master LIMIT 1").step()
            return db
        } catch {
            throw classify(error, path: path)
        }
    }

    static func classify(_ error: SQLiteError, path: String) -> BackingStoreError {
        switch error.primaryCode {
        case SQLITE_NOTADB: .notADatabase(path: path)
        case SQLITE_BUSY, SQLITE_LOCKED: .locked(path: path)
        case SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_AUTH: .unreadable(path: path, reason: "cannot open (permissions?)")
        default: .unreadable(path: path, reason: error.message)
        }
    }

    static func rows(_ db: SQLiteConnection, table: String, sql: String,
                     _ body: (SQLiteStatement) throws(BackingStoreError) -> Void) throws(BackingStoreError) {
        let statement: SQLiteStatement
        do {
            statement = try db.prepare(sql)
        } catch {
            if error.message.contains("no such table") { throw .missingTable(table) }
            if error.message.contains("no such column") { throw .unreadable(path: db.path, reason: "table \(table) lacks a column SPIKE writes") }
            throw classify(error, path: db.path)
        }
        while true {
            let more: Bool
            do {
                more = try statement.step()
            } catch {
                throw classify(error, path: db.path)
            }
            guard more else { return }
            try body(statement)
        }
    }

    static func symmetricKey(_ rootKey: SecretBytes) throws(BackingStoreError) -> SymmetricKey {
        guard rootKey.count == 32 else { throw .badKey }
        return rootKey.withUnsafeBytes { SymmetricKey(data: $0) }
    }

    /// Opens `ciphertext ‖ tag` with the row's nonce (XOR `salt` when given).
    static func decrypt(_ row: SQLiteStatement, nonceColumn: Int32, cipherColumn: Int32, columnName: String, key: SymmetricKey,
                        label: @autoclosure () -> String, salt: [UInt8]? = nil) throws(BackingStoreError) -> SecretBytes {
        var nonce = row.withBlob(nonceColumn) { Array($0) }
        guard nonce.count == nonceByteCount else { throw .badNonce(row: label(), length: nonce.count) }
        if let salt { for i in 0..<nonceByteCount { nonce[i] ^= salt[i] } }
        return try row.withBlob(cipherColumn) { (sealed) -> Result<SecretBytes, BackingStoreError> in
            guard sealed.count >= tagByteCount else { return .failure(.truncated(row: label(), column: columnName)) }
            do {
                let box = try AES.GCM.SealedBox(
                    nonce: AES.GCM.Nonce(data: nonce),
                    ciphertext: UnsafeRawBufferPointer(rebasing: sealed[..<(sealed.count - tagByteCount)]),
                    tag: UnsafeRawBufferPointer(rebasing: sealed[(sealed.count - tagByteCount)...]))
                var plain = try AES.GCM.open(box, using: key)
                defer { plain.withUnsafeMutableBytes { SecureMemory.wipe($0) } }
                return .success(plain.withUnsafeBytes { SecretBytes(copying: $0) })
            } catch {
                return .failure(.tagMismatch(row: label()))
            }
        }.get()
    }

    /// `s` in double quotes, its own double quotes escaped with a backslash.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            if c == "\"" { out.unicodeScalars.append("\\") }
            out.unicodeScalars.append(c)
        }
        out.unicodeScalars.append("\"")
        return out
    }
}
