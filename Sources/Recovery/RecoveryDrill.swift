import BackingStore
import SecretJSON
import SecureMemory
import Shamir
import ShamirCore
import SpikeWire

/// What a recovery drill found (`spike-recovery drill`, Spec cli.md): per
/// keeper, whether its shard is one of the root key's, and for the whole,
/// whether a recovery now would succeed and how many keepers it can lose.
///
/// Invariant: holds no secret; `detail`s are built from public facts only
/// (ids, counts, transport errors), never from shard or key bytes.
public struct DrillReport: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// The shard agrees with the key (the store's key, or, when the store
        /// cannot check one, the key all held shards agree on).
        case ok
        case noShard = "no_shard"
        /// The shard disagrees with the key, the answer broke the wire
        /// format, or the shard could not be checked (the detail says which).
        case wrongShard = "wrong_shard"
        case unreachable
        /// The TLS handshake refused the keeper's SPIFFE ID.
        case wrongIdentity = "wrong_identity"
    }

    public struct Keeper: Sendable, Equatable {
        public let id: Int
        public let status: Status
        public let detail: String?
    }

    /// What the store said about the key (`store` in the JSON).
    public enum Store: String, Sendable {
        case opens, doesNotOpen = "does_not_open", empty, missing, unreadable, notAsked = "not_asked"
    }

    /// A recovery started now would reach step 12 (by the recovery's own rules).
    public let recoverable: Bool
    /// The key rebuilt from the good shards opens the store's rows.
    public let verified: Bool
    /// How many more keepers could be lost with recovery still possible.
    public let tolerates: Int
    public let threshold: Int
    public let store: Store
    /// Why the store did not open or could not be read (public: a row name, a path, an error).
    public let storeDetail: String?
    public let keepers: [Keeper]

    /// Exit 0 only for this: every keeper `ok` and the key verified.
    public var healthy: Bool { verified && keepers.allSatisfy { $0.status == .ok } }

    /// One line, Spec cli.md's object (with `store` appended).
    public var json: String {
        let list = keepers.map { k in
            "{\"id\":\(k.id),\"status\":\"\(k.status.rawValue)\"" + (k.detail.map { ",\"detail\":" + JSONText.quoted($0) } ?? "") + "}"
        }
        return "{\"recoverable\":\(recoverable),\"verified\":\(verified),\"tolerates\":\(tolerates),\"threshold\":\(threshold),"
            + "\"keepers\":[\(list.joined(separator: ","))],\"store\":\"\(store.rawValue)\""
            + (storeDetail.map { ",\"store_detail\":" + JSONText.quoted($0) } ?? "") + "}"
    }

    /// The readable form, for stderr.
    public var table: String {
        var lines = ["keeper  status          detail"]
        for k in keepers {
            let status = k.status.rawValue.padding(toLength: 16, withPad: " ", startingAt: 0)
            lines.append("\(String(k.id).padding(toLength: 8, withPad: " ", startingAt: 0))\(status)\(k.detail ?? "")")
        }
        if let storeDetail { lines.append("store: \(storeDetail)") }
        lines.append("threshold \(threshold); store: \(store.rawValue); verified: \(verified ? "yes" : "no"); "
                     + (recoverable ? "recoverable, tolerates the loss of \(tolerates) more keeper\(tolerates == 1 ? "" : "s")" : "NOT recoverable"))
        return lines.joined(separator: "\n")
    }
}

/// A non-destructive recovery drill: every keeper is asked for its shard at
/// once (one request each, the recovery's request deadline), the shards are
/// sorted into those on one polynomial and the rest, the key is checked
/// against the store, and everything is wiped. Nothing is written: no
/// contribute, no database write (the store is opened read-only).
///
/// Shards come from SPIKE's deterministic split, so a T-subset is
/// self-consistent (re-splitting its key gives back its shards) exactly when
/// its shards are one key's: a wrong shard is found whenever T good ones
/// answered, and the store says whether that key is the root key.
public struct RecoveryDrill: Sendable {
    let config: RecoveryConfiguration
    let client: any KeeperClient
    let store: any StoreAccess

    public init(config: RecoveryConfiguration, client: any KeeperClient, store: any StoreAccess) {
        self.config = config
        self.client = client
        self.store = store
    }

    /// A key some T-subset rebuilt, with the held shards on its split.
    struct Polynomial {
        let key: SecretBytes
        let supporters: [Int]
    }

    /// Runs the drill. Throws `SettingError` for bad settings (nothing is
    /// asked), `RecoveryViolation` when a buffer does not read back as zero.
    public func run() async throws -> DrillReport {
        try config.validate()
        try config.validateStorePresence()
        let t = config.threshold, config = self.config, client = self.client
        let answers = await withTaskGroup(of: (Int, KeeperAnswer).self) { group in
            for index in config.keepers.indices {
                group.addTask { (index + 1, await client.fetchShard(url: config.shardURL(keeper: index), deadline: config.requestDeadline)) }
            }
            var all: [(Int, KeeperAnswer)] = []
            for await answer in group { all.append(answer) }
            return all.sorted { $0.0 < $1.0 }
        }

        var collection = ShardCollection(threshold: max(t, 1))
        var statuses: [Int: (DrillReport.Status, String?)] = [:]
        var stray: [SecretBytes] = []
        for (id, answer) in answers {
            switch answer {
            case .shard(let value):
                if value.count == ShamirConstants.scalarByteCount && NativeShamir.isCanonicalNonZero(value) {
                    collection.append(id: id, value: value)
                } else {
                    value.wipe()
                    stray.append(value)
                    statuses[id] = (.wrongShard, "the shard is not a value below the group order")
                }
            case .noShard: statuses[id] = (.noShard, nil)
            case .rejected(let why): statuses[id] = (.wrongShard, "answer refused: \(why)")
            case .unreachable(let why): statuses[id] = (.unreachable, why)
            case .wrongIdentity(let why): statuses[id] = (.wrongIdentity, why)
            }
        }

        var polynomials: [Polynomial] = []
        var keys: [SecretBytes] = []
        defer { for k in keys { k.wipe() } }
        var found: Polynomial?
        var storeWord = DrillReport.Store.notAsked
        var verdictDetail: String?
        // Self-consistent T-subsets, each checked against the store until one opens it.
        for subset in collection.untriedSubsets(limit: ShardCollection.spareSearchLimit) {
            if polynomials.contains(where: { p in subset.allSatisfy(p.supporters.contains) }) { continue }
            let key = try rebuild(collection, subset)
            keys.append(key)
            let supporters = try onSplit(collection, key)
            guard subset.allSatisfy(supporters.contains) else { continue }
            let polynomial = Polynomial(key: key, supporters: supporters)
            polynomials.append(polynomial)
            switch verdict(key) {
            case .opens:
                storeWord = .opens
                found = polynomial
            case .doesNotOpen(let row):
                storeWord = .doesNotOpen
                verdictDetail = row
            case .empty: storeWord = .empty
            case .missing: storeWord = .missing
            case .unreadable(let why):
                storeWord = .unreadable
                verdictDetail = why
            }
            if found != nil { break }
        }

        // The store cannot judge: the key all held shards agree on, if there is exactly one.
        let storeJudges = storeWord == .opens || storeWord == .doesNotOpen
        let accepted: Polynomial? = found ?? (!storeJudges && polynomials.count == 1 ? polynomials[0] : nil)
        let held = collection.ids
        for id in held {
            if let accepted, accepted.supporters.contains(id) {
                statuses[id] = (.ok, nil)
            } else if let accepted {
                statuses[id] = (.wrongShard, found != nil
                    ? "not part of the split of the key that opens the store (stale or corrupted); the next distribution round replaces it"
                    : "not part of the split of the key the other shards agree on")
            } else if collection.count < t {
                statuses[id] = (.wrongShard, "unchecked: \(collection.count) of the \(t) shards needed to check a shard answered")
            } else if let other = polynomials.first(where: { $0.supporters.contains(id) }) {
                statuses[id] = (.wrongShard, storeJudges
                    ? "agrees with keepers \(other.supporters) on a key that does not open the store (shards of an older root key?)"
                    : "unchecked: the shards agree on \(polynomials.count) different keys and the store (\(storeWord.rawValue)) cannot tell which is right")
            } else if polynomials.isEmpty {
                statuses[id] = (.wrongShard, "unchecked: no \(t) of the shards \(held) lie on one key's split")
            } else {
                statuses[id] = (.wrongShard, "unchecked: not on the split of a key other shards agree on, and none of those keys opens the store")
            }
        }

        let good = accepted?.supporters.count ?? 0
        let verified = found != nil
        // The recovery's rules: the store's key needs T shards; a key the store
        // cannot check is accepted only from all shares; an unreadable store is waited for.
        let needed = verified ? t : config.shares
        let recoverable = accepted != nil && good >= needed && storeWord != .unreadable
        let report = DrillReport(
            recoverable: recoverable, verified: verified, tolerates: recoverable ? good - needed : 0, threshold: t,
            store: storeWord, storeDetail: verified ? nil : verdictDetail,
            keepers: (1...config.keepers.count).map { id in
                let (status, detail) = statuses[id] ?? (.unreachable, "no answer")
                return DrillReport.Keeper(id: id, status: status, detail: detail)
            })

        for k in keys { k.wipe() }
        let everHeld = collection.everHeld
        let zero = collection.wipeAll() && keys.allSatisfy(\.isAllZero) && stray.allSatisfy(\.isAllZero) && everHeld.allSatisfy(\.isAllZero)
        try RecoveryMachine.require(zero, "drill", "AD.1", "a shard or key buffer is not zero after the drill")
        return report
    }

    func rebuild(_ collection: ShardCollection, _ subset: [Int]) throws -> SecretBytes {
        do {
            return try NativeShamir().recover(threshold: config.threshold, shards: collection.shards(for: subset))
        } catch {
            throw RecoveryViolation(step: "drill", assertion: "AD.2", detail: "shards validated on arrival were refused by Shamir: \(error)")
        }
    }

    /// Held ids whose shard equals `key`'s deterministic split.
    func onSplit(_ collection: ShardCollection, _ key: SecretBytes) throws -> [Int] {
        let expected = try NativeShamir().split(rootKey: key, threshold: config.threshold, shares: config.shares).shards
        defer { for s in expected { s.value.wipe() } }
        return collection.ids.filter { id in collection.shards[id]!.constantTimeEquals(expected[id - 1].value) }
    }

    enum Verdict { case opens, doesNotOpen(String), empty, missing, unreadable(String) }

    func verdict(_ key: SecretBytes) -> Verdict {
        do {
            switch try store.check(candidate: key) {
            case .opens: return .opens
            case .doesNotOpen(let row): return .doesNotOpen("the key the shards agree on does not open \(row)")
            case .empty: return .empty
            case .missing: return config.allowEmptyStore ? .missing : .unreadable("the database file is gone")
            }
        } catch {
            return .unreadable("\(config.databasePath) cannot be read: \(error)")
        }
    }
}
