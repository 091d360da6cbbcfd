import ArgumentParser
import Foundation
import SecureMemory
import Shamir
import ShamirCore

/// `spike-recovery demo`: the embedded default a newcomer runs first.
///
/// This version runs the root-key path of the recovery in one process: a
/// fresh root key, the Bootstrap split into one shard per keeper, a Nexus
/// that starts without the key, collects `threshold` shards, rebuilds and
/// checks the key, and wipes the shards. Keepers here are in-process slots;
/// the networked keepers (mTLS), the SQLite store and the step-by-step state
/// machine join the demo as their issues land.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the recovery's root-key path end to end on the embedded default (3 keepers, threshold 2).")

    @Option(help: "Number of keepers (shares).") var keepers = 3
    @Option(help: "Shards needed to rebuild the root key.") var threshold = 2
    @Flag(help: "Take one keeper down before the Nexus asks for shards.") var killOne = false

    func validate() throws {
        guard keepers >= 1, keepers <= 1000 else { throw ValidationError("--keepers must be 1…1000 (got \(keepers))") }
        guard threshold >= 1, threshold <= keepers else {
            throw ValidationError("--threshold must be 1…keepers (got \(threshold) with \(keepers) keepers)")
        }
        if killOne && threshold > keepers - 1 {
            throw ValidationError("--kill-one needs threshold <= keepers - 1 (got \(threshold) of \(keepers))")
        }
    }

    func run() throws {
        let clock = ContinuousClock()
        let start = clock.now
        func stamp() -> String { String(format: "%7.2f ms", (clock.now - start) / .milliseconds(1)) }
        let shamir = NativeShamir()

        // Bootstrap: a fresh root key, split, one shard per keeper.
        let rootKey = Self.freshRootKey()
        let split: ShamirSplit
        do {
            split = try shamir.split(rootKey: rootKey, threshold: threshold, shares: keepers)
        } catch {
            throw fail(OperatorError("demo: split refused: \(error)"))
        }
        Console.say("[\(stamp())] bootstrap  root key minted; split into \(keepers) shards (threshold \(threshold)); keeper i holds shard i")
        var keeperSlots: [Shard?] = split.shards.map { $0 }

        // Nexus restarts with no root key in memory.
        Console.say("[\(stamp())] step 1     nexus starts without a root key")
        if killOne {
            keeperSlots[0] = nil
            Console.say("[\(stamp())] fault      keeper 1 is down")
        }
        Console.say("[\(stamp())] step 3     \(keepers) keepers configured")
        var collected: [Shard] = []
        for (index, slot) in keeperSlots.enumerated() where collected.count < threshold {
            guard let shard = slot else {
                Console.say("[\(stamp())] step 4.4   keeper \(index + 1): unreachable, trying the next")
                continue
            }
            collected.append(shard)
            Console.say("[\(stamp())] step 4.4   keeper \(index + 1): shard \(shard.id) received (\(collected.count)/\(threshold))")
        }
        Console.say("[\(stamp())] step 6     threshold met with shards \(collected.map(\.id))")
        let rebuilt: SecretBytes
        do {
            rebuilt = try shamir.recover(threshold: threshold, shards: collected)
        } catch {
            throw fail(OperatorError("demo: reconstruction failed: \(error)"))
        }
        let matches = rebuilt.constantTimeEquals(rootKey)
        Console.say("[\(stamp())] step 7     root key rebuilt; \(matches ? "it matches the minted key" : "IT DOES NOT MATCH")")
        for shard in collected { shard.value.wipe() }
        let wiped = collected.allSatisfy { $0.value.isAllZero }
        Console.say("[\(stamp())] step 10    collected shards wiped (\(wiped ? "verified zero" : "NOT ZERO"))")
        guard matches, wiped else { throw ExitCode(1) }
        Console.say("demo ok: root key rebuilt from \(threshold) of \(keepers) shards in \(stamp().trimmingCharacters(in: .whitespaces))")
    }

    /// 32 random bytes below n and non-zero (rejection as in the split).
    static func freshRootKey() -> SecretBytes {
        while true {
            let key = SecretBytes(zeroedCount: ShamirConstants.scalarByteCount)
            key.withUnsafeMutableBytes { raw in
                var rng = SystemRandomNumberGenerator()
                for i in 0..<raw.count { raw[i] = UInt8.random(in: 0...255, using: &rng) }
            }
            let ok = key.withUnsafeBytes { $0.lexicographicallyPrecedes(ShamirConstants.groupOrderBigEndian) } && !key.isAllZero
            if ok { return key }
        }
    }
}
