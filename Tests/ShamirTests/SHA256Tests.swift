import Crypto
import Foundation
import Testing
import TestSupport
@testable import Shamir

/// The chain's own SHA-256 against the FIPS 180-4 examples and against
/// swift-crypto (BoringSSL), a separate implementation.
/// Every test runs the portable compression and, where the CPU has them
/// (this machine does), the one with the SHA extensions.
@Suite struct SHA256Tests {
    /// The compressions this CPU can run: the portable one always.
    static let compressions = Shamir.SHA256.extensionsAvailable ? [false, true] : [false]

    func digest(_ message: [UInt8], useExtensions: Bool) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Shamir.SHA256.digestByteCount)
        message.withUnsafeBytes { m in out.withUnsafeMutableBytes { Shamir.SHA256.hash(m, into: $0, useExtensions: useExtensions) } }
        return out
    }

    /// Where the kernel reports the extensions (this machine's CPU has them),
    /// the detection finds them, so the tests below do run both paths.
    @Test(.enabled(if: Self.cpuAdvertisesSHA)) func theExtensionsAreFoundWhereTheCPUHasThem() {
        #expect(Self.compressions == [false, true])
    }

    static var cpuAdvertisesSHA: Bool {
        ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").contains(" sha_ni")
    }

    @Test(arguments: compressions) func fipsExamples(useExtensions: Bool) {
        func digest(_ message: [UInt8]) -> [UInt8] { self.digest(message, useExtensions: useExtensions) }
        #expect(digest(Array("abc".utf8)) == bytes(hex: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        #expect(digest([]) == bytes(hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
        // 56 bytes: the padding needs a second block.
        #expect(digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == bytes(hex: "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"))
        #expect(digest([UInt8](repeating: 0x61, count: 1_000_000))
                == bytes(hex: "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"))
    }

    /// Every length from 0 to 300 bytes covers each padding case (tail of
    /// 0…63 bytes, one or two tail blocks) several times over.
    @Test(arguments: compressions) func agreesWithSwiftCryptoAtEveryLength(useExtensions: Bool) {
        var rng = TestRNG(seed: 0x5348_4132_3536)
        for length in 0...300 {
            let message = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            #expect(digest(message, useExtensions: useExtensions) == Array(Crypto.SHA256.hash(data: message)), "length \(length)")
        }
    }

    /// The chain hashes a block in place: input and output are the same 32 bytes.
    @Test(arguments: compressions) func inPlaceEqualsOutOfPlace(useExtensions: Bool) {
        var rng = TestRNG(seed: 7)
        for _ in 0..<50 {
            var block = (0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let expected = digest(block, useExtensions: useExtensions)
            block.withUnsafeMutableBytes { Shamir.SHA256.hash(UnsafeRawBufferPointer($0), into: $0, useExtensions: useExtensions) }
            #expect(block == expected)
        }
    }
}
