import SecureMemory
import Shamir

/// A random 32-byte root key that SPIKE accepts (canonical and non-zero), so
/// every test key can be split and recovered.
public func randomRootKey() -> SecretBytes { NativeShamir.randomRootKey() }
