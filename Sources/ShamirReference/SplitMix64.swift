import ShamirCore

/// A small deterministic PRNG (SplitMix64) for the things that must
/// reproduce exactly — vector subsets, test operands, benchmark inputs —
/// and never for secrets.
public struct SplitMix64: Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// Seeded from SHA-256 of a label, so a name picks the sequence.
    public init(label: String) {
        let digest = ReferenceShamir.sha256(Array("spike-recovery/rng/\(label)".utf8))
        state = digest.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    public mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }

    /// 32 bytes whose value is below n and not zero.
    public mutating func scalarBytes() -> [UInt8] {
        while true {
            let b = bytes(32)
            if b.lexicographicallyPrecedes(ShamirConstants.groupOrderBigEndian) && b.contains(where: { $0 != 0 }) { return b }
        }
    }

    /// Fisher–Yates with this generator (Swift's own shuffle is not stable across versions).
    public mutating func shuffled<T>(_ items: [T]) -> [T] {
        var a = items
        guard a.count > 1 else { return a }
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, below(i + 1)) }
        return a
    }
}
