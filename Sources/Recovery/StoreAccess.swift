import BackingStore
import SecureMemory

/// The backing store as recovery sees it: check a candidate (7.2), load (9).
public protocol StoreAccess: Sendable {
    func check(candidate: SecretBytes) throws(BackingStoreError) -> SpikeDatabase.KeyCheck
    func load(rootKey: SecretBytes) throws(BackingStoreError) -> NexusState
}

/// SPIKE's SQLite database, read-only.
public struct SQLiteStore: StoreAccess {
    public let path: String
    public init(path: String) { self.path = path }
    public func check(candidate: SecretBytes) throws(BackingStoreError) -> SpikeDatabase.KeyCheck {
        try SpikeDatabase.check(path: path, candidate: candidate)
    }
    public func load(rootKey: SecretBytes) throws(BackingStoreError) -> NexusState {
        try SpikeDatabase.load(path: path, rootKey: rootKey)
    }
}
