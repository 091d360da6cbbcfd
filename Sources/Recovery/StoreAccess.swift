import BackingStore
import SecureMemory

/// The backing store as recovery sees it: check a candidate (7.2), load (9).
public protocol StoreAccess: Sendable {
    func check(candidate: SecretBytes) throws(BackingStoreError) -> SpikeDatabase.KeyCheck
    func load(rootKey: SecretBytes) throws(BackingStoreError) -> NexusState
}

/// SPIKE's SQLite database, read-only. `leavingNoFiles` (the drill): an
/// idle WAL database is read without creating its `-wal` and `-shm` files.
public struct SQLiteStore: StoreAccess {
    public let path: String
    public let leavingNoFiles: Bool
    public init(path: String, leavingNoFiles: Bool = false) {
        self.path = path
        self.leavingNoFiles = leavingNoFiles
    }
    public func check(candidate: SecretBytes) throws(BackingStoreError) -> SpikeDatabase.KeyCheck {
        try SpikeDatabase.check(path: path, candidate: candidate, leavingNoFiles: leavingNoFiles)
    }
    public func load(rootKey: SecretBytes) throws(BackingStoreError) -> NexusState {
        try SpikeDatabase.load(path: path, rootKey: rootKey)
    }
}
