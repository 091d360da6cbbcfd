import CGMP

/// A GMP integer owned by a Swift object (cleared when it goes away).
///
/// Reference code only: GMP is variable-time and reallocates without wiping,
/// so this type never touches production secrets.
/// Values are never changed after an operation returns them, which is why the
/// type may be shared (the group order is a static constant).
final class BigInt: @unchecked Sendable {
    let raw: UnsafeMutablePointer<cgmp_mpz>

    init() {
        raw = .allocate(capacity: 1)
        cgmp_init(raw)
    }
    convenience init(_ value: UInt64) {
        self.init()
        cgmp_set_ui(raw, UInt(value))
    }
    convenience init(bigEndian bytes: UnsafeRawBufferPointer) {
        self.init()
        if bytes.count > 0 {
            cgmp_import_be(raw, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
    }
    convenience init(bigEndian bytes: [UInt8]) {
        self.init()
        bytes.withUnsafeBytes { b in
            if b.count > 0 { cgmp_import_be(raw, b.baseAddress!.assumingMemoryBound(to: UInt8.self), b.count) }
        }
    }
    deinit {
        cgmp_clear(raw)
        raw.deallocate()
    }

    var isZero: Bool { cgmp_sgn(raw) == 0 }

    static func < (a: BigInt, b: BigInt) -> Bool { cgmp_cmp(a.raw, b.raw) < 0 }

    /// (a + b) mod m, (a - b) mod m, (a * b) mod m: results in 0..<m.
    static func addMod(_ a: BigInt, _ b: BigInt, _ m: BigInt) -> BigInt {
        let r = BigInt()
        cgmp_add(r.raw, a.raw, b.raw)
        cgmp_mod(r.raw, r.raw, m.raw)
        return r
    }
    static func subMod(_ a: BigInt, _ b: BigInt, _ m: BigInt) -> BigInt {
        let r = BigInt()
        cgmp_sub(r.raw, a.raw, b.raw)
        cgmp_mod(r.raw, r.raw, m.raw)
        return r
    }
    static func mulMod(_ a: BigInt, _ b: BigInt, _ m: BigInt) -> BigInt {
        let r = BigInt()
        cgmp_mul(r.raw, a.raw, b.raw)
        cgmp_mod(r.raw, r.raw, m.raw)
        return r
    }
    /// a^-1 mod m, or nil when a has no inverse.
    static func invMod(_ a: BigInt, _ m: BigInt) -> BigInt? {
        let r = BigInt()
        return cgmp_invert(r.raw, a.raw, m.raw) != 0 ? r : nil
    }

    /// Exactly `width` big-endian bytes; precondition: the value fits.
    func bigEndianBytes(width: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width)
        let ok = out.withUnsafeMutableBytes { cgmp_export_be(raw, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), width) }
        precondition(ok == 1, "BigInt does not fit in \(width) bytes")
        return out
    }
}
