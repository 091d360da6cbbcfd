import CoreMetrics
import Foundation
import Logging
import SecureMemory
import Shamir

/// Step 11 (`SendShardsPeriodically`): recompute the deterministic shards of
/// the installed root key and hand share i to keeper i, now and then every
/// `SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL`. Runs only for a key in the holder,
/// which holds only verified keys.
public final class ShardDistributor: @unchecked Sendable {
    let config: RecoveryConfiguration
    let client: any KeeperClient
    let holder: RootKeyHolder
    let logger: Logger
    private let lock = NSLock()
    private var task: Task<Void, Never>?
    private var passes = 0
    private var delivered = 0

    public init(config: RecoveryConfiguration, client: any KeeperClient, holder: RootKeyHolder, logger: Logger) {
        self.config = config
        self.client = client
        self.holder = holder
        self.logger = logger
    }

    /// One pass: returns the keeper ids (1-based) that accepted their shard.
    @discardableResult
    public func distributeOnce() async -> [Int] {
        guard let key = holder.copy() else { return [] }
        defer { key.wipe() }
        guard config.keepers.count == config.shares else {
            logger.error("distribution refused: \(config.keepers.count) keepers but \(config.shares) shares")
            return []
        }
        let split: [SecretBytesBox]
        do {
            split = try NativeShamir().split(rootKey: key, threshold: config.threshold, shares: config.shares).shards.map { SecretBytesBox($0.value) }
        } catch {
            logger.error("distribution refused: \(error)")
            return []
        }
        let config = self.config, client = self.client, logger = self.logger
        let accepted = await withTaskGroup(of: Int?.self) { group in
            for i in 0..<config.keepers.count {
                group.addTask {
                    switch await client.contribute(url: config.contributeURL(keeper: i), shard: split[i].value, deadline: config.requestDeadline) {
                    case .success: return i + 1
                    case .failure(let e):
                        logger.warning("distribution: keeper \(i + 1) did not take its shard (\(e))")
                        return nil
                    }
                }
            }
            var ok: [Int] = []
            for await id in group { if let id { ok.append(id) } }
            return ok.sorted()
        }
        for s in split { s.value.wipe() }
        lock.withLock {
            passes += 1
            delivered += accepted.count
        }
        Counter(label: "spike_distribution_shards_total", dimensions: [("outcome", "delivered")]).increment(by: accepted.count)
        Counter(label: "spike_distribution_shards_total", dimensions: [("outcome", "failed")]).increment(by: config.keepers.count - accepted.count)
        logger.info("distribution: \(accepted.count) of \(config.keepers.count) keepers hold their shard")
        return accepted
    }

    /// Starts the periodic task: a pass now, then one every interval.
    public func start() {
        lock.lock()
        defer { lock.unlock() }
        guard task == nil else { return }
        let interval = config.updateInterval
        task = Task { [weak self] in
            while !Task.isCancelled {
                await self?.distributeOnce()
                try? await Task.sleep(for: interval)
            }
        }
    }

    public func stop() {
        lock.lock()
        task?.cancel()
        task = nil
        lock.unlock()
    }

    /// (passes completed, shards delivered) — for metrics and tests.
    public var counts: (passes: Int, delivered: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (passes, delivered)
    }
}

/// Lets a task group share a shard buffer reference.
struct SecretBytesBox: @unchecked Sendable {
    let value: SecretBytes
    init(_ value: SecretBytes) { self.value = value }
}
