// Carry-propagating word arithmetic (inlinable: the field operations are
// inlined into callers in other modules, where most of their time goes). Every helper is branch-free: carries and
// borrows travel as 0/1 words computed through UInt128, never as Bool.

/// a + b + carry → (sum, carry out ∈ {0, 1}).
@inlinable @inline(__always)
func addCarry(_ a: UInt64, _ b: UInt64, _ carry: UInt64) -> (UInt64, UInt64) {
    let t = UInt128(a) &+ UInt128(b) &+ UInt128(carry)
    return (UInt64(truncatingIfNeeded: t), UInt64(truncatingIfNeeded: t &>> 64))
}

/// a − b − borrow → (difference, borrow out ∈ {0, 1}).
@inlinable @inline(__always)
func subBorrow(_ a: UInt64, _ b: UInt64, _ borrow: UInt64) -> (UInt64, UInt64) {
    let t = UInt128(a) &- UInt128(b) &- UInt128(borrow)
    return (UInt64(truncatingIfNeeded: t), UInt64(truncatingIfNeeded: t &>> 127))
}

/// acc + a·b + carry → (low word, high word); cannot overflow 128 bits.
@inlinable @inline(__always)
func mulAdd(_ acc: UInt64, _ a: UInt64, _ b: UInt64, _ carry: UInt64) -> (UInt64, UInt64) {
    let p = a.multipliedFullWidth(by: b)
    let t = (UInt128(p.high) &<< 64 | UInt128(p.low)) &+ UInt128(acc) &+ UInt128(carry)
    return (UInt64(truncatingIfNeeded: t), UInt64(truncatingIfNeeded: t &>> 64))
}

/// All ones when `bit` is 1, zero when it is 0.
@inlinable @inline(__always)
func mask(_ bit: UInt64) -> UInt64 { 0 &- bit }
