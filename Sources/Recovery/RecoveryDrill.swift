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

    /// Each keeper's status word, in keeper order.
    public var statuses: [String] { keepers.map(\.status.rawValue) }

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
    /// The held shards on the split of a key some T-subset rebuilt (the key itself is in `keys`, for wiping), and what the store said of it.
    struct Polynomial {
        let supporters: [Int]
        let members: Set<Int>
        let store: DrillReport.Store
        let storeDetail: String?
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
        var keys: [SecretBytes] = []
        // Every path out, a throw included, wipes; the normal one also checks (AD.1).
        defer {
            for k in keys { k.wipe() }
            _ = collection.wipeAll()
        }
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

        // Self-consistent T-subsets (as many as recovery's step 6 examines),
        // each key checked against the store until one opens it. Once the store
        // says it cannot judge (empty, missing, unreadable), that holds for every key.
        var polynomials: [Polynomial] = []
        var found: Polynomial?
        var cannotJudge: (store: DrillReport.Store, detail: String?)?
        let searchedAll = !Self.subsetCount(collection.count, t, exceeds: ShardCollection.detectionLimit)
        var covered: Set<Int> = []
        for subset in collection.untriedSubsets(limit: ShardCollection.detectionLimit) {
            // Every held shard lies on a key found already: another key would need one of them too.
            if covered.count == collection.count { break }
            if polynomials.contains(where: { p in subset.allSatisfy(p.members.contains) }) { continue }
            let key = try rebuild(collection, subset)
            keys.append(key)
            let supporters = try onSplit(collection, key)
            guard subset.allSatisfy(supporters.contains) else { continue }
            let said = cannotJudge ?? verdict(key)
            let polynomial = Polynomial(supporters: supporters, members: Set(supporters), store: said.store, storeDetail: said.detail)
            polynomials.append(polynomial)
            covered.formUnion(polynomial.supporters)
            switch said.store {
            case .opens: found = polynomial
            case .empty, .missing, .unreadable: cannotJudge = said
            case .doesNotOpen, .notAsked: break
            }
            if found != nil { break }
        }

        // Conclusive: every set was looked at, or every shard lies on a key found.
        let conclusive = searchedAll || covered.count == collection.count
        let storeWord: DrillReport.Store = found != nil ? .opens : cannotJudge?.store ?? (polynomials.isEmpty ? .notAsked : .doesNotOpen)
        let storeDetail = found != nil ? nil : cannotJudge?.detail ?? polynomials.first?.storeDetail
        // The store cannot judge: the key all held shards agree on, if there is exactly one.
        let accepted: Polynomial? = found ?? (cannotJudge != nil && polynomials.count == 1 && conclusive ? polynomials[0] : nil)
        let held = collection.ids
        let limitNote = conclusive ? "" : " (in the first \(ShardCollection.detectionLimit) sets of \(t) shards)"
        for id in held {
            if let accepted, accepted.supporters.contains(id) {
                statuses[id] = (.ok, nil)
            } else if accepted != nil {
                statuses[id] = (.wrongShard, found != nil
                    ? "not part of the split of the key that opens the store (stale or corrupted); the next distribution round replaces it"
                    : "not part of the split of the key the other shards agree on")
            } else if collection.count < t {
                statuses[id] = (.wrongShard, "unchecked: \(collection.count) of the \(t) shards needed to check a shard answered")
            } else if let own = polynomials.first(where: { $0.supporters.contains(id) }) {
                statuses[id] = (.wrongShard, own.store == .doesNotOpen
                    ? "agrees with keepers \(own.supporters) on a key that does not open the store (shards of an older root key?)"
                    : "unchecked: the shards agree on \(polynomials.count) different keys\(limitNote) and the store (\(own.store.rawValue)) cannot tell which is right")
            } else if polynomials.isEmpty {
                statuses[id] = (.wrongShard, "unchecked: no \(t) of the shards \(held) lie on one key's split\(limitNote)")
            } else {
                statuses[id] = (.wrongShard, "unchecked: not on the split of a key other shards agree on\(limitNote), and none of those keys opens the store")
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
            store: storeWord, storeDetail: storeDetail,
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

    /// What the store says of `key` (7.2's verdicts; a vanished file is unreadable unless allowed missing).
    func verdict(_ key: SecretBytes) -> (store: DrillReport.Store, detail: String?) {
        do {
            switch try store.check(candidate: key) {
            case .opens: return (.opens, nil)
            case .doesNotOpen(let row): return (.doesNotOpen, "the key the shards agree on does not open \(row)")
            case .empty: return (.empty, nil)
            case .missing: return config.allowEmptyStore ? (.missing, nil) : (.unreadable, "\(config.databasePath): the database file is gone")
            }
        } catch {
            return (.unreadable, "\(config.databasePath) cannot be read: \(error)")
        }
    }

    /// Whether there are more than `limit` ways to choose `t` of `n` (no overflow).
    static func subsetCount(_ n: Int, _ t: Int, exceeds limit: Int) -> Bool {
        guard t >= 0, t <= n else { return false }
        var count = 1
        for i in 0..<min(t, n - t) {
            count = count * (n - i) / (i + 1)  // exact: a product of i+1 consecutive integers divides by (i+1)!
            if count > limit { return true }
        }
        return false
    }
}
