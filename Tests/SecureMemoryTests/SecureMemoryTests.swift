import Testing
@testable import SecureMemory

@Suite struct SecretBytesTests {
    @Test func startsZeroedAndWipes() {
        let s = SecretBytes(zeroedCount: 32)
        #expect(s.isAllZero)
        s.withUnsafeMutableBytes { for i in 0..<32 { $0[i] = UInt8(i + 1) } }
        #expect(!s.isAllZero)
        s.wipe()
        #expect(s.isAllZero)
        #expect(s.count == 32)
    }

    @Test func consumingInitWipesTheSource() {
        var source: [UInt8] = Array(1...32)
        let s = SecretBytes(consuming: &source)
        #expect(source.isEmpty)
        #expect(s.withUnsafeBytes { Array($0) } == Array(1...32))
    }

    @Test func equalityMaskAndConstantTimeEquals() {
        let a = SecretBytes(copying: [UInt8](repeating: 7, count: 32))
        let b = a.copy()
        #expect(a.equalityMask(b) == UInt64.max)
        #expect(a.constantTimeEquals(b))
        b.withUnsafeMutableBytes { $0[31] ^= 0x80 }
        #expect(a.equalityMask(b) == 0)
        #expect(!a.constantTimeEquals(b))
        let shorter = SecretBytes(zeroedCount: 31)
        #expect(a.equalityMask(shorter) == 0)
        // A one-bit difference in the first byte counts as much as one in the last.
        let c = a.copy()
        c.withUnsafeMutableBytes { $0[0] ^= 1 }
        #expect(a.equalityMask(c) == 0)
    }

    @Test func descriptionNeverShowsTheBytes() {
        let s = SecretBytes(copying: [UInt8](repeating: 0xab, count: 32))
        #expect(!"\(s)".contains("ab"))
        #expect(!String(reflecting: s).contains("171"))
        #expect("\(s)" == "SecretBytes(32 bytes, redacted)")
    }

    @Test func hexBytesCoversEveryNibble() {
        let bytes: [UInt8] = (0..<16).map { UInt8($0 << 4 | (15 - $0)) }
        let s = SecretBytes(copying: bytes)
        let hex = String(decoding: s.hexBytes(), as: UTF8.self)
        #expect(hex == "0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    }

    /// The masked nibble decoder against the plain definition, for every byte.
    @Test func hexNibbleForEveryByte() {
        for c in UInt8.min...UInt8.max {
            let expected: UInt8 = switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x61 + 10
            case 0x41...0x46: c - 0x41 + 10
            default: 255
            }
            #expect(SecretBytes.hexNibble(c) == expected, "byte \(c)")
        }
        #expect(SecretBytes.decodingHex(Array("00ffA0b9".utf8)).map { $0.withUnsafeBytes { Array($0) } } == [0x00, 0xff, 0xa0, 0xb9])
        for bad in ["0g", "g0", "/0", ":0", "@0", "`0", "0G", "0 ", "abc"] { #expect(SecretBytes.decodingHex(Array(bad.utf8)) == nil, "\(bad)") }
    }

    @Test func wipeArray() {
        var a: [UInt8] = [1, 2, 3]
        wipe(&a)
        #expect(a == [0, 0, 0])
    }
}
