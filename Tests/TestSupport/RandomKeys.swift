import SecureMemory
import Shamir

/// A random 32-byte root key that SPIKE accepts: canonical (below the group
/// order) and non-zero, so every test key can be split and recovered.
public func randomRootKey() -> SecretBytes {
    while true {
        let key = SecretBytes(zeroedCount: 32)
        key.withUnsafeMutableBytes { for i in 0..<32 { $0[i] = UInt8.random(in: 0...255) } }
        if NativeShamir.isCanonicalNonZero(key) { return key }
    }
}
