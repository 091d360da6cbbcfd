import ScalarField
import SecureMemory
import Shamir
import ShamirCore
import ShamirReference

/// `bench`: the native field and Shamir code against the GMP reference,
/// side by side in one run. Each figure is the median of several timed
/// batches; build with `-c release` for numbers worth quoting.
public enum FieldBench {
    /// How much work each measure does.
    public struct Effort: Sendable {
        public var batches, mulCount, invRounds, reps, bigReps, largeBatches: Int
        /// The 1000-of-2000 rows (seconds each through an unoptimized field).
        public var large: Bool
        /// What the README's table is measured with.
        public static let full = Effort(batches: 7, mulCount: 2_000_000, invRounds: 400, reps: 2_000, bigReps: 20, largeBatches: 3, large: true)
        /// `bench --quick`: noisier numbers, every row.
        public static let quick = Effort(batches: 3, mulCount: 200_000, invRounds: 50, reps: 200, bigReps: 3, largeBatches: 1, large: true)
        /// Every measure runs once with tiny counts (tests, debug and sanitizer builds).
        public static let smoke = Effort(batches: 1, mulCount: 400, invRounds: 2, reps: 4, bigReps: 1, largeBatches: 1, large: false)
    }

    /// Records (name, nanoseconds per operation) for each measure.
    public static func run(_ effort: Effort, record: (String, Double) -> Void) {
        let batches = effort.batches
        var rng = SplitMix64(seed: 0x5eed)
        let a = rng.scalarBytes(), b = rng.scalarBytes()

        // Field multiplication. `mul_ns`: cost per product with four independent
        // chains in flight (as in Lagrange weights and multi-point Horner);
        // `mul_latency_ns`: one chain r ← r·b, each product waiting for the last.
        // GMP is measured the same two ways.
        let mulCount = effort.mulCount
        var x0 = decode(a), x1 = decode(b), x2 = decode(a), x3 = decode(b)
        let y = decode(b)
        record("mul_ns", median(batches) {
            time(ops: mulCount) {
                for _ in 0..<(mulCount / 4) {
                    x0 = x0 * y
                    x1 = x1 * y
                    x2 = x2 * y
                    x3 = x3 * y
                }
            }
        })
        record("mul_latency_ns", median(batches) {
            time(ops: mulCount) { for _ in 0..<mulCount { x0 = x0 * y } }
        })
        sink(x0.canonicalLimbs.0 ^ x1.canonicalLimbs.0 ^ x2.canonicalLimbs.0 ^ x3.canonicalLimbs.0)
        let ga = ReferenceField.Value(bigEndian: a), gb = ReferenceField.Value(bigEndian: b)
        record("gmp_mul_ns", median(batches) {
            time(ops: mulCount / 4) { sink(UInt64(ReferenceField.interleavedMulMod(ga, gb, count: mulCount / 16))) }
        })
        record("gmp_mul_latency_ns", median(batches) {
            time(ops: mulCount / 4) { sink(UInt64(ReferenceField.chainedMulMod(ga, gb, count: mulCount / 4))) }
        })

        // Inversion: per element of a batch of 64 (Lagrange weights use the batch), one
        // general (Lehmer, variable-time) inversion, and GMP's mpz_invert. Both single
        // inversions take the same 64 random values in turn (one value inverted over and
        // over would let the branch predictor learn its path).
        let inverted = (0..<64).map { _ in rng.scalarBytes() }
        let batch = inverted.map(decode)
        let gmpBatch = inverted.map { ReferenceField.Value(bigEndian: $0) }
        let invRounds = effort.invRounds
        record("inv_ns", median(batches) {
            time(ops: invRounds * batch.count) {
                for _ in 0..<invRounds { sink(P256Scalar.batchInverseOfPublic(batch)[7].canonicalLimbs.0) }
            }
        })
        record("single_inv_ns", median(batches) {
            time(ops: invRounds * 8) {
                for i in 0..<(invRounds * 8) { sink(batch[i & 63].inverseOfPublic().canonicalLimbs.0) }
            }
        })
        record("gmp_inv_ns", median(batches) {
            time(ops: invRounds * 8) { sink(UInt64(ReferenceField.repeatedInverse(gmpBatch, count: invRounds * 8))) }
        })

        // Shamir.
        let native = NativeShamir(), reference = ReferenceShamir()
        let key = SecretBytes(copying: a)
        func shards(_ t: Int, _ n: Int) -> [Shard] { Array(try! native.split(rootKey: key, threshold: t, shares: n).shards.prefix(t)) }
        let small = shards(2, 3), hundred = shards(100, 200)
        let reps = effort.reps
        record("split_2_of_3_ns", median(batches) { time(ops: reps) { for _ in 0..<reps { sink(try! native.split(rootKey: key, threshold: 2, shares: 3).shards.count) } } })
        record("gmp_split_2_of_3_ns", median(batches) { time(ops: reps / 4) { for _ in 0..<reps / 4 { sink(try! reference.split(rootKey: key, threshold: 2, shares: 3).shards.count) } } })
        record("recover_2_of_3_ns", median(batches) { time(ops: reps * 4) { for _ in 0..<reps * 4 { sink(try! native.recover(threshold: 2, shards: small).count) } } })
        record("gmp_recover_2_of_3_ns", median(batches) { time(ops: reps) { for _ in 0..<reps { sink(try! reference.recover(threshold: 2, shards: small).count) } } })
        let bigReps = effort.bigReps
        record("recover_100_of_200_ns", median(batches) { time(ops: bigReps) { for _ in 0..<bigReps { sink(try! native.recover(threshold: 100, shards: hundred).count) } } })
        record("gmp_recover_100_of_200_ns", median(batches) { time(ops: bigReps) { for _ in 0..<bigReps { sink(try! reference.recover(threshold: 100, shards: hundred).count) } } })
        guard effort.large else { return }
        let thousand = shards(1000, 2000)
        record("recover_1000_of_2000_ns", median(effort.largeBatches) { time(ops: 1) { sink(try! native.recover(threshold: 1000, shards: thousand).count) } })
        record("gmp_recover_1000_of_2000_ns", median(effort.largeBatches) { time(ops: 1) { sink(try! reference.recover(threshold: 1000, shards: thousand).count) } })
    }

    /// Pairs of (native, GMP) measures whose ratio the table shows.
    public static let comparisons = [("mul_ns", "gmp_mul_ns"), ("mul_latency_ns", "gmp_mul_latency_ns"), ("inv_ns", "gmp_inv_ns"),
                                     ("single_inv_ns", "gmp_inv_ns"), ("split_2_of_3_ns", "gmp_split_2_of_3_ns"),
                                     ("recover_2_of_3_ns", "gmp_recover_2_of_3_ns"),
                                     ("recover_100_of_200_ns", "gmp_recover_100_of_200_ns"),
                                     ("recover_1000_of_2000_ns", "gmp_recover_1000_of_2000_ns")]

    static func decode(_ bytes: [UInt8]) -> P256Scalar { bytes.withUnsafeBytes { P256Scalar.decode(bigEndian: $0).value } }
}

/// Nanoseconds per operation of one timed batch.
private func time(ops: Int, _ body: () -> Void) -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    body()
    return (clock.now - start) / .nanoseconds(1) / Double(ops)
}

private func median(_ batches: Int, _ measure: () -> Double) -> Double {
    _ = measure()  // warm-up
    let samples = (0..<batches).map { _ in measure() }.sorted()
    return samples[samples.count / 2]
}

/// Keeps results alive so the optimizer cannot drop the measured work.
nonisolated(unsafe) private var sinkValue: UInt64 = 0
@inline(never) private func sink<T: BinaryInteger>(_ v: T) { sinkValue &+= UInt64(truncatingIfNeeded: v) }
