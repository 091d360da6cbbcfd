import BackingStore
import Foundation
import ShamirCore
import SpiffeIdentity

/// Step 3: what recovery needs from the environment, checked before it starts.
///
/// Invariant: `keepers` are distinct https URLs, `keepers.count == shares`,
/// `1 <= threshold <= shares`; keeper i (1-based) holds share i and, when
/// `keeperIDs` is set, must present exactly `keeperIDs[i-1]`.
public struct RecoveryConfiguration: Sendable {
    public var keepers: [String]
    public var threshold: Int
    public var shares: Int
    /// Cap of the exponential backoff between rounds (SPIKE_NEXUS_RECOVERY_MAX_INTERVAL).
    public var maximumBackoff: Duration
    /// First backoff delay; doubles each round up to the cap.
    public var initialBackoff: Duration
    /// Deadline of one request to one keeper (connect, handshake and answer).
    public var requestDeadline: Duration
    /// Give up when not operational by then (--deadline); nil = forever.
    public var deadline: Duration?
    /// Period of shard distribution (SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL).
    public var updateInterval: Duration
    /// The SQLite database (`$SPIKE_NEXUS_DATA_DIR/data/spike.db`).
    public var databasePath: String
    /// `--allow-empty-store`: a missing database is a fresh installation, not
    /// a configuration error. Its key still cannot be verified (step 7.2).
    public var allowEmptyStore: Bool
    /// Step 10: how long answers still outstanding at verification are
    /// awaited (to check them against the key) before they are cancelled.
    public var lateAnswerWait: Duration
    /// `SPIKE_NEXUS_KEEPER_IDS`: the SPIFFE ID each keeper must present, by
    /// position. nil is Go SPIKE's rule: any keeper ID at any position, so a
    /// keeper put at the wrong position is handed another keeper's shard.
    public var keeperIDs: [SpiffeID]?

    public init(keepers: [String], threshold: Int, shares: Int, databasePath: String,
                maximumBackoff: Duration = .seconds(5), initialBackoff: Duration = .milliseconds(500),
                requestDeadline: Duration = .seconds(3), deadline: Duration? = nil, updateInterval: Duration = .seconds(300),
                allowEmptyStore: Bool = false, lateAnswerWait: Duration = .milliseconds(100), keeperIDs: [SpiffeID]? = nil) {
        self.keepers = keepers
        self.threshold = threshold
        self.shares = shares
        self.databasePath = databasePath
        self.maximumBackoff = maximumBackoff
        self.initialBackoff = initialBackoff
        self.requestDeadline = requestDeadline
        self.deadline = deadline
        self.updateInterval = updateInterval
        self.allowEmptyStore = allowEmptyStore
        self.lateAnswerWait = lateAnswerWait
        self.keeperIDs = keeperIDs
    }

    public static let peersVariable = "SPIKE_NEXUS_KEEPER_PEERS"
    public static let thresholdVariable = "SPIKE_NEXUS_SHAMIR_THRESHOLD"
    public static let sharesVariable = "SPIKE_NEXUS_SHAMIR_SHARES"
    public static let dataDirectoryVariable = "SPIKE_NEXUS_DATA_DIR"
    public static let keeperIDsVariable = "SPIKE_NEXUS_KEEPER_IDS"

    /// The step-3 store rule: a missing database is refused unless allowed.
    public func validateStorePresence() throws(SettingError) {
        guard allowEmptyStore || SpikeDatabase.exists(path: databasePath) else {
            throw SettingError(setting: Self.dataDirectoryVariable,
                                     problem: "no SPIKE database at \(databasePath); check the directory, or pass --allow-empty-store on the first boot of a fresh installation")
        }
    }

    /// Parses `SPIKE_NEXUS_KEEPER_PEERS`: comma-separated, trimmed https URLs.
    public static func parsePeers(_ raw: String) throws(SettingError) -> [String] {
        var out: [String] = []
        var identities: [String] = []
        for (i, entry) in raw.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let url = entry.trimmingCharacters(in: .whitespaces)
            guard !url.isEmpty else { throw SettingError(setting: peersVariable, problem: "entry \(i + 1) is empty") }
            guard let c = URLComponents(string: url), c.scheme?.lowercased() == "https", let host = c.host, !host.isEmpty,
                  c.query == nil, c.fragment == nil, c.user == nil, c.password == nil else {
                throw SettingError(setting: peersVariable, problem: "entry \(i + 1) is not an https://host[:port][/prefix] URL")
            }
            let port = c.port ?? 443
            guard (1...65535).contains(port) else {
                throw SettingError(setting: peersVariable, problem: "entry \(i + 1) has port \(port); a port is 1...65535")
            }
            // The scheme is stored lowercase: the client takes only "https".
            let lowered = "https" + url.dropFirst("https".count)
            let trimmed = lowered.hasSuffix("/") ? String(lowered.dropLast()) : lowered
            // One keeper however it is written: scheme and host case, the default port, a trailing slash.
            let path = c.percentEncodedPath.hasSuffix("/") ? String(c.percentEncodedPath.dropLast()) : c.percentEncodedPath
            let identity = "https://\(host.lowercased()):\(port)\(path)"
            if let earlier = identities.firstIndex(of: identity) {
                throw SettingError(setting: peersVariable, problem: "entry \(i + 1) repeats entry \(earlier + 1) (the same keeper)")
            }
            identities.append(identity)
            out.append(trimmed)
        }
        return out
    }

    /// Parses `SPIKE_NEXUS_KEEPER_IDS`: comma-separated SPIFFE IDs, each a
    /// keeper ID under the trust roots, none repeated.
    public static func parseKeeperIDs(_ raw: String, trustRoots: TrustRoots) throws(SettingError) -> [SpiffeID] {
        var out: [SpiffeID] = []
        for (i, entry) in raw.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let text = entry.trimmingCharacters(in: .whitespaces)
            let id: SpiffeID
            do {
                id = try SpiffeID(parsing: text)
            } catch {
                throw SettingError(setting: keeperIDsVariable, problem: "entry \(i + 1) is not a SPIFFE ID (\(error))")
            }
            guard trustRoots.id(id, hasRole: .keeper) else {
                throw SettingError(setting: keeperIDsVariable, problem: "entry \(i + 1), \(id), is not a keeper ID")
            }
            guard !out.contains(id) else { throw SettingError(setting: keeperIDsVariable, problem: "entry \(i + 1) repeats \(id)") }
            out.append(id)
        }
        return out
    }

    /// The step-3 checks; the first problem found, naming its setting.
    public func validate() throws(SettingError) {
        guard !keepers.isEmpty else { throw SettingError(setting: Self.peersVariable, problem: "no keepers configured") }
        guard threshold >= 1 else { throw SettingError(setting: Self.thresholdVariable, problem: "must be at least 1 (got \(threshold))") }
        guard shares >= threshold else {
            throw SettingError(setting: Self.sharesVariable, problem: "must be at least the threshold \(threshold) (got \(shares))")
        }
        guard shares <= ShamirConstants.maximumShares else {
            throw SettingError(setting: Self.sharesVariable, problem: "must be at most \(ShamirConstants.maximumShares)")
        }
        guard keepers.count == shares else {
            throw SettingError(setting: Self.peersVariable,
                                     problem: "lists \(keepers.count) keepers but \(Self.sharesVariable) is \(shares) (one keeper per share)")
        }
        if let keeperIDs, keeperIDs.count != keepers.count {
            throw SettingError(setting: Self.keeperIDsVariable,
                               problem: "lists \(keeperIDs.count) IDs but \(Self.peersVariable) lists \(keepers.count) keepers (one ID per keeper, in the same order)")
        }
    }

    public func shardURL(keeper index: Int) -> String { keepers[index] + "/v1/store/shard" }
    public func contributeURL(keeper index: Int) -> String { keepers[index] + "/v1/store/contribute" }

    /// The ID each request URL's server must present (empty without `keeperIDs`).
    public var pinnedKeeperIDs: [String: SpiffeID] {
        guard let keeperIDs else { return [:] }
        // `validate()` refuses a count mismatch; pinning none instead would fail open.
        precondition(keeperIDs.count == keepers.count, "SPIKE_NEXUS_KEEPER_IDS must match the keepers; call validate() first")
        var pins: [String: SpiffeID] = [:]
        for (i, id) in keeperIDs.enumerated() {
            pins[shardURL(keeper: i)] = id
            pins[contributeURL(keeper: i)] = id
        }
        return pins
    }
}
