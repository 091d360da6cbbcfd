import BackingStore
import Crypto
import Foundation
import SecretJSON
import SecureMemory

/// Writes SPIKE-format databases exactly as Go SPIKE Nexus does — schema,
/// WAL mode, AES-256-GCM under the root key, salted metadata nonces, Go's
/// JSON escaping and time format, and the reused policy nonce (a Go quirk
/// kept here only so that fixtures match Go's files). For tests and the demo:
/// the recovery path never writes.
public final class SpikeDatabaseWriter {
    let db: SQLiteConnection
    let key: SymmetricKey

    /// A root key that is not 32 bytes (AES-256): refused before anything is written.
    public struct KeyLengthError: Error, Equatable, CustomStringConvertible {
        public let count: Int
        public init(count: Int) { self.count = count }
        public var description: String { "root key must be 32 bytes (got \(count))" }
    }

    public init(path: String, rootKey: SecretBytes) throws {
        // swift-crypto would take 16 or 24 bytes as AES-128/192: a store SPIKE cannot open.
        guard rootKey.count == 32 else { throw KeyLengthError(count: rootKey.count) }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        db = try SQLiteConnection(path: path, mode: .readWriteCreate)
        key = rootKey.withUnsafeBytes { SymmetricKey(data: $0) }
        try db.execute("PRAGMA journal_mode=WAL;")
        try db.execute(SpikeDatabase.schema)
    }

    public struct Version {
        public var version: Int
        public var data: [String: String]
        public var created: Date
        public var deleted: Date?
        public init(version: Int, data: [String: String], created: Date, deleted: Date? = nil) {
            self.version = version
            self.data = data
            self.created = created
            self.deleted = deleted
        }
    }

    /// Writes every version of a secret and its metadata in one transaction.
    public func putSecret(path: String, versions: [Version], maxVersions: Int = 10, created: Date, updated: Date) throws {
        try db.execute("BEGIN")
        do {
            try putSecretInTransaction(path: path, versions: versions, maxVersions: maxVersions, created: created, updated: updated)
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    /// The same rows, inside a transaction the caller opened (bulk fixtures).
    public func putSecretInTransaction(path: String, versions: [Version], maxVersions: Int = 10, created: Date, updated: Date) throws {
        do {
            let insert = try db.prepare("INSERT OR REPLACE INTO secrets (path, version, nonce, encrypted_data, created_time, deleted_time) VALUES (?, ?, ?, ?, ?, ?)")
            for v in versions {
                let nonce = Self.randomNonce()
                insert.reset()
                try insert.bind(1, path)
                try insert.bind(2, Int64(v.version))
                try insert.bind(3, nonce)
                try insert.bind(4, seal(Array(Self.goJSON(v.data).utf8), nonce: nonce))
                try insert.bind(5, Self.goTime(v.created))
                if let d = v.deleted { try insert.bind(6, Self.goTime(d)) } else { try insert.bindNull(6) }
                _ = try insert.step()
            }
            let live = versions.filter { $0.deleted == nil }.map(\.version)
            let all = versions.map(\.version)
            let fields: [String] = [
                String(live.max() ?? all.max() ?? 0), String(all.min() ?? 0),
                String(Int64(created.timeIntervalSince1970)), String(Int64(updated.timeIntervalSince1970)), String(maxVersions),
            ]
            let base = Self.randomNonce()
            let meta = try db.prepare("INSERT OR REPLACE INTO secret_metadata (path, nonce, encrypted_current_version, encrypted_oldest_version, encrypted_created_time, encrypted_updated_time, encrypted_max_versions) VALUES (?, ?, ?, ?, ?, ?, ?)")
            try meta.bind(1, path)
            try meta.bind(2, base)
            for (i, (field, salt)) in zip(fields, SpikeDatabase.metadataSalts.map(\.salt)).enumerated() {
                let nonce = zip(base, salt).map { $0 ^ $1 }
                try meta.bind(Int32(3 + i), seal(Array(field.utf8), nonce: nonce))
            }
            _ = try meta.step()
        }
    }

    public func putPolicy(name: String, spiffeIDPattern: String, pathPattern: String, permissions: [String], created: Int64, updated: Int64) throws {
        let nonce = Self.randomNonce()  // Go seals all three fields under this one nonce
        let insert = try db.prepare("INSERT OR REPLACE INTO policies (name, nonce, encrypted_spiffe_id_pattern, encrypted_path_pattern, encrypted_permissions, created_time, updated_time) VALUES (?, ?, ?, ?, ?, ?, ?)")
        try insert.bind(1, name)
        try insert.bind(2, nonce)
        try insert.bind(3, seal(Array(spiffeIDPattern.utf8), nonce: nonce))
        try insert.bind(4, seal(Array(pathPattern.utf8), nonce: nonce))
        try insert.bind(5, seal(Array(permissions.joined(separator: ",").utf8), nonce: nonce))
        try insert.bind(6, created)
        try insert.bind(7, updated)
        _ = try insert.step()
    }

    /// Raw access for tests that need to damage rows.
    public func execute(_ sql: String) throws { try db.execute(sql) }
    public var connection: SQLiteConnection { db }

    func seal(_ plaintext: [UInt8], nonce: [UInt8]) throws -> [UInt8] {
        let box = try AES.GCM.seal(plaintext, using: key, nonce: AES.GCM.Nonce(data: nonce))
        return Array(box.ciphertext) + Array(box.tag)
    }

    static func randomNonce() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<SpikeDatabase.nonceByteCount).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// Go's encoding/json for map[string]string: keys sorted, HTML-safe escaping
    /// (<, >, & as \u003c, \u003e, \u0026), U+2028/U+2029 escaped.
    public static func goJSON(_ map: [String: String]) -> String {
        "{" + map.keys.sorted().map { JSONText.quoted($0, goHTMLSafe: true) + ":" + JSONText.quoted(map[$0]!, goHTMLSafe: true) }.joined(separator: ",") + "}"
    }

    /// Go's `2006-01-02 15:04:05.999999999-07:00` (UTC here; trailing zeros of the fraction dropped).
    public static func goTime(_ date: Date) -> String {
        let seconds = floor(date.timeIntervalSince1970)
        let nanos = Int((date.timeIntervalSince1970 - seconds) * 1e9)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: seconds))
        var text = String(format: "%04d-%02d-%02d %02d:%02d:%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
        if nanos > 0 {
            var fraction = String(format: "%09d", nanos)
            while fraction.hasSuffix("0") { fraction.removeLast() }
            text += "." + fraction
        }
        return text + "+00:00"
    }
}
