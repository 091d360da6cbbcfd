import BackingStore
import Dispatch
import SecureMemory
import Shamir
import SpikeWire

/// The first-use costs of a recovery's own path, paid ahead of it on a spare
/// core: the Swift runtime resolves each generic type and conformance on first
/// use by scanning the binary's conformance records, and SQLite and
/// swift-crypto initialise lazily. Run at process start, this overlaps with
/// reading settings and the SVID, where one core is idle. Nothing here touches
/// a secret, a keeper or the store: the inputs are fixed public values.
public enum RecoveryWarmUp {
    /// A keeper's 200 answer as Go SPIKE writes it (`{"shard":[…32 byte integers…]}`), for the value 1.
    static let sampleShardBody = "{\"shard\":[" + ([String](repeating: "0", count: 31) + ["1"]).joined(separator: ",") + "]}"

    /// Starts the warm-up on a global dispatch queue (not the verification
    /// executor, whose queue the handshakes' SVID checks use) and returns.
    public static func start() {
        DispatchQueue.global(qos: .userInitiated).async { run() }
        // The process's first `Task.sleep` (`--deadline`'s timer, the retry
        // waits) looks up how the executor schedules: a conformance scan.
        Task { try? await Task.sleep(for: .nanoseconds(1)) }
    }

    static func run() {
        // Step 4.4: a shard answer's JSON, parsed and validated as a keeper's is.
        if case .shard(let value) = KeeperWire.interpretShardResponse(status: 200, body: SecretBytes(copying: Array(sampleShardBody.utf8))) {
            value.wipe()
        }
        // Steps 4 and 7.1: the id sets of a round and of a subset.
        var held = Set<Int>(), tried = Set<[Int]>()
        held.insert(1)
        tried.insert([1, 2])
        withExtendedLifetime((held, tried)) {}
        _ = idList([1, 2])
        // Step 7.1: the rebuild's cache of Lagrange weights, by id set.
        NativeShamir.warmUp()
        // Steps 7.2 and 9: SQLite, AES-GCM and the rows-to-state code, on an in-memory store.
        SpikeDatabase.warmUp()
    }
}
