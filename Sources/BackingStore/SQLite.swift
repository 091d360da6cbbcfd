import CSQLite
import Foundation

/// A thin wrapper over the system SQLite C API: just what reading (and, for
/// fixtures, writing) SPIKE's database needs.
///
/// Invariant: `handle` is an open connection until `close()`; read-only
/// connections are opened with SQLITE_OPEN_READONLY and can never write.
public final class SQLiteConnection {
    let handle: OpaquePointer
    public let path: String

    public enum Mode {
        case readOnly, readWriteCreate
        /// Read-only, and leaves the directory as it found it. With both
        /// `-wal` and `-shm` present (a connection has it open in WAL mode) or
        /// a `-journal` (a rollback-mode writer), the plain read-only open
        /// uses what is there and creates nothing. Otherwise nobody has it
        /// open, the main file alone is a consistent snapshot, and it is read
        /// as immutable, so SQLite creates no `-wal`/`-shm`. A writer that
        /// starts meanwhile can at worst make a read fail (a tag that does not
        /// verify, or corruption reported), never make a wrong key look right.
        case readOnlyLeavingNoFiles
    }

    /// How long a read-only connection waits for another process's lock.
    public static let readerBusyMilliseconds: Int32 = 200

    public init(path: String, mode: Mode) throws(SQLiteError) {
        var db: OpaquePointer?
        let rc: Int32
        switch mode {
        case .readWriteCreate:
            rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        case .readOnly:
            rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil)
        case .readOnlyLeavingNoFiles:
            let present = { (suffix: String) in FileManager.default.fileExists(atPath: path + suffix) }
            let idle = !(present("-wal") && present("-shm")) && !present("-journal")
            let target = idle ? Self.immutableURI(path) : path
            rc = sqlite3_open_v2(target, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | (idle ? SQLITE_OPEN_URI : 0), nil)
        }
        guard rc == SQLITE_OK, let db else {
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, message: String(cString: sqlite3_errstr(rc)))
        }
        handle = db
        self.path = path
        // Writers wait for a lock as Go SPIKE does (5 s). A read-only reader is
        // recovery's store check: it must not sit in SQLite past --deadline;
        // a locked store is retried by the recovery's own backoff instead.
        sqlite3_busy_timeout(db, mode == .readWriteCreate ? 5000 : SQLiteConnection.readerBusyMilliseconds)
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { sqlite3_close_v2(handle) }

    /// `file:<path>?immutable=1`, the path percent-encoded where a URI needs it.
    static func immutableURI(_ path: String) -> String {
        var encoded = ""
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "%"), UInt8(ascii: "?"), UInt8(ascii: "#"), 0..<0x21, 0x7f...:
                encoded += "%" + String(byte, radix: 16, uppercase: true).leftPadded(2)
            default:
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            }
        }
        // `file:///abs` keeps a path that starts with `//` from being read as a host.
        return (path.hasPrefix("/") ? "file://" : "file:") + encoded + "?immutable=1"
    }

    public func execute(_ sql: String) throws(SQLiteError) {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &error)
        if rc != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(error)
            throw SQLiteError(code: rc, message: message)
        }
    }

    public func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(handle))) }
        return SQLiteStatement(statement, connection: self)
    }
}

public struct SQLiteError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public var primaryCode: Int32 { code & 0xff }
    public var description: String { "\(message) (SQLite code \(code))" }
}

/// A prepared statement; `step` returns false when done.
public final class SQLiteStatement {
    let statement: OpaquePointer
    let connection: SQLiteConnection

    init(_ statement: OpaquePointer, connection: SQLiteConnection) {
        self.statement = statement
        self.connection = connection
    }

    deinit { sqlite3_finalize(statement) }

    public func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(statement)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(connection.handle)))
        }
    }

    public func reset() {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
    }

    public func bind(_ index: Int32, _ text: String) throws(SQLiteError) {
        let bytes = Array(text.utf8)
        let rc = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(buffer.count, 1)) {
                csqlite_bind_text(statement, index, $0, Int32(buffer.count))
            }
        }
        guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: "bind failed") }
    }

    public func bind(_ index: Int32, _ blob: [UInt8]) throws(SQLiteError) {
        let rc = blob.withUnsafeBytes { csqlite_bind_blob(statement, index, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, Int32($0.count)) }
        guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: "bind failed") }
    }

    public func bind(_ index: Int32, _ value: Int64) throws(SQLiteError) {
        let rc = sqlite3_bind_int64(statement, index, value)
        guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: "bind failed") }
    }

    public func bindNull(_ index: Int32) throws(SQLiteError) {
        let rc = sqlite3_bind_null(statement, index)
        guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: "bind failed") }
    }

    public func isNull(_ column: Int32) -> Bool { sqlite3_column_type(statement, column) == SQLITE_NULL }

    public func text(_ column: Int32) -> String? {
        guard let p = sqlite3_column_text(statement, column) else { return nil }
        return String(cString: p)
    }

    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }

    /// Calls `body` with the column's bytes, valid only during the call (no copy is made).
    public func withBlob<R>(_ column: Int32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let count = Int(sqlite3_column_bytes(statement, column))
        let pointer = sqlite3_column_blob(statement, column)
        return try body(UnsafeRawBufferPointer(start: count > 0 ? pointer : nil, count: count))
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
