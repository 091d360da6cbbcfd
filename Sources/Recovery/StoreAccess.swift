import BackingStore
import SecureMemory

/// The backing store as recovery sees it: check a candidate (7.2), load (9).
public protocol StoreAccess: Sendable {
    /// Called once the first round's requests are out: starts any set-up the
    /// check and load can use, without waiting for it and concluding nothing.
    func prepare()
    func check(candidate: SecretBytes) throws(BackingStoreError) -> SpikeDatabase.KeyCheck
    func load(rootKey: SecretBytes) throws(BackingStoreError) -> NexusState
}

extension StoreAccess {
    public func prepare() {}
}

/// SPIKE's SQLite database, read-only, its connection opened ahead while the
/// handshakes run (`StoreReader`). `leavingNoFiles` (the drill): an idle WAL
/// database is read without creating its `-wal` and `-shm` files, and
/// nothing is opened ahead.
public struct SQLiteStore: StoreAccess {
    public let path: String
    public let leavingNoFiles: Bool
    let reader: StoreReader
    public init(path: String, leavingNoFiles: Bool = false) {
        self.path = path
        self.leavingNoFiles = leavingNoFiles
        reader = StoreReader(path: path)
    }
    public func prepare() {
        if !leavingNoFiles { reader.prepare() }
    }
    public func check(candidate: SecretBytes) throws(BackingStoreError) -> SpikeDatabase.KeyCheck {
        if leavingNoFiles { return try SpikeDatabase.check(path: path, candidate: candidate, leavingNoFiles: true) }
        return try reader.check(candidate: candidate)
    }
    public func load(rootKey: SecretBytes) throws(BackingStoreError) -> NexusState {
        try reader.load(rootKey: rootKey)
    }
}
