import CSecureMemory

/// A fixed-size buffer for secret bytes (root keys, shard values, coefficients).
///
/// Invariant: owns exactly `count` bytes of its own heap memory, never shared
/// with another value; the bytes are zeroed (with a wipe the optimizer keeps)
/// before the memory is freed. The buffer is a class so that passing it around
/// passes a reference, never a copy of the secret. It has no `description`
/// that shows its contents.
///
/// Swap: buffers are not mlock'ed one by one (a syscall per shard would cost
/// more than the arithmetic); processes that hold secrets lock all their
/// memory once at start (`ProcessHardening`).
///
/// Concurrency: reading is safe from any task; writers must be the sole owner
/// or hold the lock of the type that shares the buffer (e.g. a root-key holder).
public final class SecretBytes: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    private let base: UnsafeMutableRawPointer
    public let count: Int

    /// A zero-filled secret buffer of `count` bytes.
    public init(zeroedCount count: Int) {
        precondition(count >= 0, "SecretBytes: negative size")
        self.count = count
        base = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(count, 1), alignment: 16)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: Swift.max(count, 1))
    }

    /// A secret buffer holding a copy of `bytes`. The caller still owns (and
    /// should wipe) its own copy.
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(zeroedCount: bytes.count)
        if bytes.count > 0 { base.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
    }

    /// A secret buffer holding a copy of `bytes` (test data and public
    /// values; a secret held in an array should go through `consuming`).
    public convenience init(copying bytes: [UInt8]) {
        self.init(zeroedCount: bytes.count)
        bytes.withUnsafeBytes { if $0.count > 0 { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
    }

    /// A secret buffer holding a copy of `bytes`, then wipes `bytes` in place,
    /// so the secret lives only here afterwards.
    public convenience init(consuming bytes: inout [UInt8]) {
        self.init(zeroedCount: bytes.count)
        bytes.withUnsafeMutableBytes { raw in
            if raw.count > 0 {
                base.copyMemory(from: raw.baseAddress!, byteCount: raw.count)
                csm_wipe(raw.baseAddress, raw.count)
            }
        }
        bytes.removeAll()
    }

    deinit {
        csm_wipe(base, Swift.max(count, 1))
        base.deallocate()
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: base, count: count))
    }

    /// Zeroes the bytes now (the buffer stays usable, holding zeros).
    public func wipe() { csm_wipe(base, Swift.max(count, 1)) }

    /// True when every byte is zero; the time taken depends only on `count`.
    /// Whether every byte is zero; only that answer is revealed (one
    /// declassified value at the end, no branch on any byte).
    public var isAllZero: Bool {
        var acc: UInt8 = 0
        for i in 0..<count { acc |= base.load(fromByteOffset: i, as: UInt8.self) }
        return ConstantTime.declassified(UInt64(acc)) == 0
    }

    /// Equality whose time depends only on the lengths.
    public func constantTimeEquals(_ other: SecretBytes) -> Bool {
        guard count == other.count else { return false }
        var acc: UInt8 = 0
        other.withUnsafeBytes { o in
            for i in 0..<count { acc |= base.load(fromByteOffset: i, as: UInt8.self) ^ o[i] }
        }
        return acc == 0
    }

    /// All ones when both buffers hold the same bytes, else zero; the time
    /// depends only on the lengths, and no branch depends on the contents.
    public func equalityMask(_ other: SecretBytes) -> UInt64 {
        guard count == other.count else { return 0 }
        var acc: UInt64 = 0
        other.withUnsafeBytes { o in
            for i in 0..<count { acc |= UInt64(base.load(fromByteOffset: i, as: UInt8.self) ^ o[i]) }
        }
        // acc − 1 borrows into the top bit exactly when acc == 0.
        return 0 &- ((acc &- 1) >> 63)
    }

    /// A new buffer with the same bytes (an explicit, visible copy).
    public func copy() -> SecretBytes {
        withUnsafeBytes { SecretBytes(copying: $0) }
    }

    /// Never shows the bytes.
    public var description: String { "SecretBytes(\(count) bytes, redacted)" }
    public var debugDescription: String { description }
}

extension SecretBytes {
    /// Lowercase hex of the secret, for writing to an operator's 0600 file
    /// only. The caller must wipe the returned array.
    public func hexBytes() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count * 2)
        withUnsafeBytes { raw in
            for i in 0..<count {
                out[2 * i] = hexDigit(raw[i] >> 4)
                out[2 * i + 1] = hexDigit(raw[i] & 0x0f)
            }
        }
        return out
    }

    /// Decodes hex digits (either case) straight into a wiping buffer; nil
    /// (and nothing left behind) unless every character is a hex digit and
    /// the count is even. For Pilot shard files and root-key files.
    public static func decodingHex(_ hex: some Collection<UInt8>) -> SecretBytes? {
        guard hex.count % 2 == 0 else { return nil }
        let value = SecretBytes(zeroedCount: hex.count / 2)
        var ok = true
        value.withUnsafeMutableBytes { out in
            var i = hex.startIndex
            var bad: UInt8 = 0  // any nibble of 255 sets a high bit; read once, at the end
            for k in 0..<out.count {
                let hi = hexNibble(hex[i]), lo = hexNibble(hex[hex.index(after: i)])
                bad |= (hi | lo) & 0xf0
                out[k] = (hi << 4) | (lo & 0x0f)
                i = hex.index(i, offsetBy: 2)
            }
            ok = ConstantTime.declassified(UInt64(bad)) == 0
        }
        guard ok else {
            value.wipe()
            return nil
        }
        return value
    }

    /// 0…15 for a hex digit (either case), 255 otherwise; by masks, so
    /// neither a branch nor a memory index depends on the character.
    @inline(__always)
    static func hexNibble(_ c: UInt8) -> UInt8 {
        let x = Int(c)
        let digit = x &- 0x30             // 0…9 for '0'…'9'
        let letter = (x | 0x20) &- 0x61   // 0…5 for 'a'…'f' and 'A'…'F'
        // All ones when 0 <= v <= limit: neither v nor limit − v is negative.
        func within(_ v: Int, _ limit: Int) -> Int { ~((v | (limit &- v)) >> (Int.bitWidth - 1)) }
        let isDigit = within(digit, 9), isLetter = within(letter, 5)
        let value = (digit & isDigit) | ((letter &+ 10) & isLetter) | (255 & ~(isDigit | isLetter))
        return UInt8(truncatingIfNeeded: value)
    }
}

/// One lowercase hex digit for a nibble, by arithmetic rather than a table
/// lookup, so no memory access depends on the secret.
@inline(__always)
private func hexDigit(_ nibble: UInt8) -> UInt8 {
    let n = Int(nibble)
    // (9 - n) >> 8 is all ones exactly when n > 9; then add the gap from '9'+1 to 'a'.
    return UInt8(truncatingIfNeeded: n &+ 48 &+ (((9 &- n) >> 8) & 39))
}

/// Zeroes an array's storage in place (for transient byte arrays that held a secret).
public func wipe(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { raw in
        if raw.count > 0 { csm_wipe(raw.baseAddress, raw.count) }
    }
}

/// Zeroes memory the caller owns (e.g. a plaintext buffer a library returned).
public func wipe(_ raw: UnsafeMutableRawBufferPointer) {
    if raw.count > 0 { csm_wipe(raw.baseAddress, raw.count) }
}
