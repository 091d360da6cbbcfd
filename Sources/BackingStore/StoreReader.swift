import Dispatch
import Foundation
import SecureMemory

/// SPIKE's database for one recovery, read-only, with its connection opened
/// ahead of the first use: `prepare()` opens the file and reads its schema
/// while the keeper handshakes run, so the key check (7.2) and the load (9)
/// do not pay for it after the threshold.
///
/// Invariant: a prepared connection was opened on the file whose device and
/// inode are its `identity`, is used only under `lock`, and only while `path`
/// still names that file; otherwise it is dropped and the path is opened as
/// if nothing had been prepared. Preparing concludes nothing: a failure leaves
/// nothing prepared, and the check then opens the file itself and reports.
/// The open runs outside `lock`, so a check never waits for one in progress
/// (on a locked store that could be the busy timeout); it opens the path
/// itself instead. The load takes the connection and closes it; nothing is
/// prepared after it.
public final class StoreReader: @unchecked Sendable {
    public let path: String
    private let lock = NSLock()
    private var prepared: (connection: SQLiteConnection, identity: FileIdentity)?
    private var loaded = false

    public init(path: String) { self.path = path }

    /// Which file a path names: device and inode, or nil when there is none.
    struct FileIdentity: Equatable {
        let device: UInt64
        let inode: UInt64
        init?(_ path: String) {
            var st = stat()
            guard stat(path, &st) == 0 else { return nil }
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
        }
    }

    /// Opens the database on a global queue and returns at once.
    public func prepare() {
        DispatchQueue.global(qos: .userInitiated).async { self.prepareNow() }
    }

    /// `prepare`'s work, on the calling thread.
    func prepareNow() {
        guard let before = FileIdentity(path), let db = try? SpikeDatabase.open(path), FileIdentity(path) == before else { return }
        lock.lock()
        defer { lock.unlock() }
        // After the load, or beside one prepared already, it is closed unused.
        if prepared == nil && !loaded { prepared = (db, before) }
    }

    /// Whether a prepared connection is held (tests).
    var isPrepared: Bool {
        lock.lock()
        defer { lock.unlock() }
        return prepared != nil
    }

    /// The prepared connection if `path` still names its file; drops it otherwise. Under `lock`.
    private func currentConnection() -> SQLiteConnection? {
        guard let p = prepared else { return nil }
        guard FileIdentity(path) == p.identity else {
            prepared = nil
            return nil
        }
        return p.connection
    }

    /// `SpikeDatabase.check(path:candidate:)`, on the prepared connection when there is one.
    public func check(candidate: SecretBytes) throws(BackingStoreError) -> SpikeDatabase.KeyCheck {
        lock.lock()
        defer { lock.unlock() }
        guard let db = currentConnection() else { return try SpikeDatabase.check(path: path, candidate: candidate) }
        return try SpikeDatabase.check(db, key: try SpikeDatabase.symmetricKey(candidate))
    }

    /// `SpikeDatabase.load(path:rootKey:)`, on the prepared connection when there is one, which it then closes.
    public func load(rootKey: SecretBytes) throws(BackingStoreError) -> NexusState {
        lock.lock()
        defer { lock.unlock() }
        loaded = true
        let db = currentConnection()
        prepared = nil
        guard let db else { return try SpikeDatabase.load(path: path, rootKey: rootKey) }
        return try SpikeDatabase.load(db, key: try SpikeDatabase.symmetricKey(rootKey))
    }
}
