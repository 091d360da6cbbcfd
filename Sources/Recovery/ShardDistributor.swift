import CoreMetrics
import Foundation
import Logging
import NIOConcurrencyHelpers
import SecureMemory
import ServiceLifecycle
import ShamirCore

/// Step 11 (`SendShardsPeriodically`): recompute the deterministic shards of
/// the installed root key and hand share i to keeper i, now and then every
/// `SPIKE_NEXUS_KEEPER_UPDATE_INTERVAL`. Runs only for a key in the holder,
/// which holds only verified keys.
///
/// As a `Service`: `run` waits until the recovery machine arms it at step 11
/// (`arm`), then distributes until graceful shutdown or cancellation. Nothing
/// runs before arming, and nothing outlives `run`.
public final class ShardDistributor: Service, Sendable {
    let config: RecoveryConfiguration
    let client: any KeeperClient
    let holder: RootKeyHolder
    let logger: Logger
    private let tally = NIOLockedValueBox((passes: 0, delivered: 0, armed: false))
    private let armSignal: AsyncStream<Void>
    private let armContinuation: AsyncStream<Void>.Continuation

    public init(config: RecoveryConfiguration, client: any KeeperClient, holder: RootKeyHolder, logger: Logger) {
        self.config = config
        self.client = client
        self.holder = holder
        self.logger = logger
        (armSignal, armContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// One pass: returns the keeper ids (1-based) that accepted their shard.
    @discardableResult
    public func distributeOnce() async -> [Int] {
        let split: [Shard]
        do {
            // The one rule for the keeper list (keepers.count == shares, keeper i holds share i).
            try config.validate()
            guard let shards = try holder.shards(threshold: config.threshold, shares: config.shares) else { return [] }
            split = shards
        } catch {
            logger.error("distribution refused: \(error)")
            return []
        }
        defer { for s in split { s.value.wipe() } }
        let config = self.config, client = self.client, logger = self.logger
        let accepted = await withTaskGroup(of: Int?.self) { group in
            for (i, shard) in split.enumerated() {
                group.addTask {
                    switch await client.contribute(url: config.contributeURL(keeper: i), shard: shard.value, deadline: config.requestDeadline) {
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
        tally.withLockedValue {
            $0.passes += 1
            $0.delivered += accepted.count
        }
        Counter(label: "spike_distribution_shards_total", dimensions: [("outcome", "delivered")]).increment(by: accepted.count)
        Counter(label: "spike_distribution_shards_total", dimensions: [("outcome", "failed")]).increment(by: config.keepers.count - accepted.count)
        DistributionGauges.record(accepted: accepted, keepers: config.keepers.count, threshold: config.threshold)
        logger.info("distribution: \(accepted.count) of \(config.keepers.count) keepers hold their shard")
        return accepted
    }

    /// Step 11: lets `run` begin (called by the recovery machine for a proven key).
    public func arm() {
        tally.withLockedValue { $0.armed = true }
        armContinuation.yield()
    }

    /// Whether step 11 handed distribution over.
    public var isArmed: Bool { tally.withLockedValue { $0.armed } }

    /// Waits to be armed, then a pass now and one every interval, until
    /// graceful shutdown or cancellation.
    public func run() async {
        let interval = config.updateInterval
        try? await cancelWhenGracefulShutdown {
            for await _ in self.armSignal { break }
            // The stream also ends when cancelled: only an armed distributor distributes.
            guard self.isArmed else { return }
            while !Task.isCancelled {
                await self.distributeOnce()
                try await Task.sleep(for: interval)
            }
        }
    }

    /// (passes completed, shards delivered) — for metrics and tests.
    public var counts: (passes: Int, delivered: Int) {
        tally.withLockedValue { ($0.passes, $0.delivered) }
    }
}

/// Per-keeper health after each distribution round, for alerts that fire
/// before a restart needs the keepers (`nexus --metrics-address`).
enum DistributionGauges {
    static func record(accepted: [Int], keepers: Int, threshold: Int) {
        for id in stride(from: 1, through: keepers, by: 1) {
            let took = accepted.contains(id)
            // 1: took its shard in the last round; 0: did not (down, refused, wrong identity).
            Gauge(label: "spike_keeper_holds_shard", dimensions: [("keeper", String(id))]).record(took ? 1 : 0)
            // A shard found wrong at recovery is replaced once the keeper takes its shard.
            if took { Gauge(label: "spike_keeper_shard_disagreed", dimensions: [("keeper", String(id))]).record(0) }
        }
        Gauge(label: "spike_keepers_holding_shard").record(accepted.count)
        // Keepers that could be lost with a restart still recovering (negative: it would not).
        Gauge(label: "spike_recovery_tolerates").record(accepted.count - threshold)
        Gauge(label: "spike_distribution_last_round_timestamp_seconds").record(Date().timeIntervalSince1970)
    }
}
