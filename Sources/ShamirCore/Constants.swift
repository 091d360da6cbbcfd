/// Sizes and constants of SPIKE's Shamir scheme, named once for every target.
public enum ShamirConstants {
    /// A scalar (root key, shard value, coefficient) travels as this many big-endian bytes.
    public static let scalarByteCount = 32
    /// The order n of the NIST P-256 group: the modulus of every Shamir computation.
    public static let groupOrderBigEndian: [UInt8] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    ]
    /// n in lowercase hex, as the vector files carry it.
    public static let groupOrderHex = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"
    /// SPIKE's defaults (SPIKE_NEXUS_SHAMIR_THRESHOLD, SPIKE_NEXUS_SHAMIR_SHARES).
    public static let defaultThreshold = 2
    public static let defaultShares = 3
    /// Our bound on shares per split (Go has none): keeps a typo from asking
    /// for billions of shards. SPIKE's own operator limit is 1000.
    public static let maximumShares = 65_536
}
