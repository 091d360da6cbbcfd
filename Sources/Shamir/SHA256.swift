import CSHA256
import SecureMemory

/// SHA-256 (FIPS 180-4), for the coefficient chain of `NativeShamir`.
///
/// Here rather than from a crypto library for two reasons: the `Shamir`
/// product then depends on nothing outside this package (a consumer does not
/// build BoringSSL), and every intermediate value (the padded tail block, the
/// message schedule, the working state) sits in memory this code wipes; the
/// chain's input and output blocks are secret.
///
/// Constant time by construction: only wrapping additions, shifts, rotations
/// and bitwise operations touch the data; the loops run a number of times
/// fixed by the (public) message length. Checked against the FIPS examples and
/// against OpenSSL over every length from 0 to 300 (ShamirTests), and through
/// the chain by every Go vector.
enum SHA256 {
    static let digestByteCount = 32
    static let blockByteCount = 64
    /// The message length is appended as a 64-bit big-endian bit count.
    static let lengthFieldByteCount = 8
    static let stateWordCount = 8
    static let scheduleWordCount = 64

    /// First 32 bits of the fractional parts of the square roots of the first 8 primes.
    static let initialState: [UInt32] = [
        0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]

    /// First 32 bits of the fractional parts of the cube roots of the first 64 primes.
    static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]

    /// Whether this CPU has the SHA extensions (`CSHA256`): the compression
    /// then takes about a tenth of the portable code's time. Both give the
    /// same digests (SHA256Tests runs each); tools/ct-check, under valgrind,
    /// which hides the extensions, checks the portable one.
    static let extensionsAvailable = csha256_hardware_available() == 1

    /// Writes SHA-256(`message`) to `digest` (exactly 32 bytes). `message`
    /// and `digest` may be the same memory: the digest is written last.
    /// `useExtensions` is for tests, which run both compressions.
    static func hash(_ message: UnsafeRawBufferPointer, into digest: UnsafeMutableRawBufferPointer,
                     useExtensions: Bool = extensionsAvailable) {
        precondition(digest.count == digestByteCount, "SHA-256 digest buffer must be 32 bytes")
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: stateWordCount + scheduleWordCount) { words in
            let state = UnsafeMutableBufferPointer(rebasing: words[0..<stateWordCount])
            let schedule = UnsafeMutableBufferPointer(rebasing: words[stateWordCount...])
            for i in 0..<stateWordCount { state[i] = initialState[i] }

            @inline(__always)
            func compressBlocks(_ blocks: UnsafeRawBufferPointer) {
                if useExtensions {
                    guard let base = blocks.baseAddress, !blocks.isEmpty else { return }
                    roundConstants.withUnsafeBufferPointer { k in
                        csha256_compress_blocks(state.baseAddress!, base.assumingMemoryBound(to: UInt8.self), blocks.count / blockByteCount, k.baseAddress!)
                    }
                    return
                }
                for b in 0..<(blocks.count / blockByteCount) {
                    compress(state, schedule, UnsafeRawBufferPointer(rebasing: blocks[(b * blockByteCount)..<((b + 1) * blockByteCount)]))
                }
            }

            let fullBlocks = message.count / blockByteCount
            compressBlocks(UnsafeRawBufferPointer(rebasing: message[0..<(fullBlocks * blockByteCount)]))

            // The rest of the message, the 0x80 marker, zeros and the bit length: one or two blocks.
            let rest = message.count - fullBlocks * blockByteCount
            let tailBlocks = rest + 1 + lengthFieldByteCount <= blockByteCount ? 1 : 2
            withUnsafeTemporaryAllocation(byteCount: 2 * blockByteCount, alignment: 8) { tail in
                tail.initializeMemory(as: UInt8.self, repeating: 0)
                if rest > 0 {
                    tail.copyMemory(from: UnsafeRawBufferPointer(rebasing: message[(fullBlocks * blockByteCount)...]))
                }
                tail[rest] = 0x80
                let bitLength = UInt64(message.count) &* 8
                let end = tailBlocks * blockByteCount
                for i in 0..<lengthFieldByteCount {
                    tail[end - 1 - i] = UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))
                }
                compressBlocks(UnsafeRawBufferPointer(rebasing: tail[0..<end]))
                wipe(tail)
            }

            for i in 0..<stateWordCount {
                let word = state[i]
                for j in 0..<4 { digest[4 * i + j] = UInt8(truncatingIfNeeded: word >> (24 - 8 * UInt32(j))) }
            }
            wipe(UnsafeMutableRawBufferPointer(words))
        }
    }

    @inline(__always)
    private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x &>> n) | (x &<< (32 &- n)) }

    /// One round: with T1 = h + Σ1(e) + Ch(e, f, g) + K[t] + W[t], d gains T1 and h
    /// becomes T1 + Σ0(a) + Maj(a, b, c) (the standard's shift of the other six is
    /// the caller's renaming).
    @inline(__always)
    private static func round(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32,
                              _ e: UInt32, _ f: UInt32, _ g: UInt32, _ h: inout UInt32, _ kw: UInt32) {
        let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ kw
        d &+= t1
        h = t1 &+ (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
    }

    /// One application of the compression function to a 64-byte block.
    private static func compress(_ state: UnsafeMutableBufferPointer<UInt32>, _ w: UnsafeMutableBufferPointer<UInt32>,
                                 _ block: UnsafeRawBufferPointer) {
        for t in 0..<16 {
            w[t] = UInt32(block[4 * t]) << 24 | UInt32(block[4 * t + 1]) << 16 | UInt32(block[4 * t + 2]) << 8 | UInt32(block[4 * t + 3])
        }
        for t in 16..<scheduleWordCount {
            let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] &>> 3)
            let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] &>> 10)
            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
        }
        var a = state[0], b = state[1], c = state[2], d = state[3]
        var e = state[4], f = state[5], g = state[6], h = state[7]
        // Eight rounds per pass with the working variables' roles rotated in the
        // arguments, instead of shifting eight values along after every round.
        roundConstants.withUnsafeBufferPointer { k in
            for t in stride(from: 0, to: scheduleWordCount, by: 8) {
                round(a, b, c, &d, e, f, g, &h, k[t] &+ w[t])
                round(h, a, b, &c, d, e, f, &g, k[t + 1] &+ w[t + 1])
                round(g, h, a, &b, c, d, e, &f, k[t + 2] &+ w[t + 2])
                round(f, g, h, &a, b, c, d, &e, k[t + 3] &+ w[t + 3])
                round(e, f, g, &h, a, b, c, &d, k[t + 4] &+ w[t + 4])
                round(d, e, f, &g, h, a, b, &c, k[t + 5] &+ w[t + 5])
                round(c, d, e, &f, g, h, a, &b, k[t + 6] &+ w[t + 6])
                round(b, c, d, &e, f, g, h, &a, k[t + 7] &+ w[t + 7])
            }
        }
        state[0] &+= a; state[1] &+= b; state[2] &+= c; state[3] &+= d
        state[4] &+= e; state[5] &+= f; state[6] &+= g; state[7] &+= h
    }
}
