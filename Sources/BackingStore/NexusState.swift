import SecureMemory

/// One version of a secret, decrypted. Values stay in wiping buffers.
public struct SecretVersion: Sendable {
    public let version: Int
    public let data: [(key: String, value: SecretBytes)]
    /// Go's text timestamps, as stored.
    public let createdTime: String
    public let deletedTime: String?
    public var isDeleted: Bool { deletedTime != nil }
}

/// A secret path's metadata (the five fields Go seals with salted nonces).
public struct SecretMetadata: Sendable, Equatable {
    public let currentVersion: Int
    public let oldestVersion: Int
    public let createdTime: Int64
    public let updatedTime: Int64
    public let maxVersions: Int
}

public struct StoredSecret: Sendable {
    public let path: String
    /// Every version in the database, live and deleted, by version number.
    public let versions: [Int: SecretVersion]
    public let metadata: SecretMetadata?
}

public struct StoredPolicy: Sendable, Equatable {
    public let name: String
    public let spiffeIDPattern: String
    public let pathPattern: String
    public let permissions: [String]
    public let createdTime: Int64
    public let updatedTime: Int64
}

/// Nexus state after step 9: everything in the database, decrypted.
///
/// Invariant: built whole or not at all — a load that fails returns no
/// partial state.
public struct NexusState: Sendable {
    public let secrets: [String: StoredSecret]
    public let policies: [String: StoredPolicy]
    /// False when the database file did not exist yet ("no data yet").
    public let databaseExists: Bool

    public var secretCount: Int { secrets.count }
    public var versionCount: Int { secrets.values.reduce(0) { $0 + $1.versions.count } }
    public var policyCount: Int { policies.count }

    public static let empty = NexusState(secrets: [:], policies: [:], databaseExists: false)
}
