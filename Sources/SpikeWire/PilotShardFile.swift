import SecureMemory

/// SPIKE Pilot's break-glass files: `spike.recovery.<id>.txt` holding
/// `spike:<id>:<64 lowercase hex>` with no newline, mode 0600.
public enum PilotShardFile {
    public static let prefix = "spike:"
    /// SPIKE_NEXUS_SHAMIR_MAX_SHARE_COUNT: ids are 1…1000.
    public static let maximumID = 1000

    public static func fileName(id: Int) -> String { "spike.recovery.\(id).txt" }

    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        case tooLong(Int), notText, noPrefix, badID, idOutOfRange(Int), badHexLength(Int), notHex, zeroShard

        public var description: String {
            switch self {
            case .tooLong(let n): "file is \(n) bytes; a shard file is \(prefix.count + 4 + 1 + 64) at most"
            case .notText: "not a text file"
            case .noPrefix: "does not start with \"spike:\""
            case .badID: "has no shard id (expected spike:<id>:<64 hex>)"
            case .idOutOfRange(let id): "shard id \(id) is outside 1...\(maximumID)"
            case .badHexLength(let n): "shard has \(n) hex digits, expected 64"
            case .notHex: "shard is not hex"
            case .zeroShard: "shard is all zero"
            }
        }
    }

    /// Parses a file's bytes (one trailing newline tolerated). The shard goes
    /// straight into a wiping buffer; errors never echo the content.
    public static func parse(_ bytes: [UInt8]) throws(Problem) -> (id: Int, value: SecretBytes) {
        var content = bytes[...]
        // The last bytes may be hex digits (secret): only "is it the line end" is made public.
        if let last = content.last, ConstantTime.declassifiedEqual(last, 0x0a) { content = content.dropLast() }
        if let last = content.last, ConstantTime.declassifiedEqual(last, 0x0d) { content = content.dropLast() }
        guard content.count <= prefix.count + 4 + 1 + 64 else { throw .tooLong(bytes.count) }
        guard content.starts(with: Array(prefix.utf8)) else { throw .noPrefix }
        let rest = content.dropFirst(prefix.count)
        guard let colon = rest.firstIndex(of: UInt8(ascii: ":")) else { throw .badID }
        let idDigits = rest[rest.startIndex..<colon]
        guard !idDigits.isEmpty, idDigits.count <= 4, idDigits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              !(idDigits.count > 1 && idDigits.first == 0x30) else { throw .badID }
        let id = idDigits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard (1...maximumID).contains(id) else { throw .idOutOfRange(id) }
        let hex = rest[rest.index(after: colon)...]
        guard hex.count == 64 else { throw .badHexLength(hex.count) }
        guard let value = SecretBytes.decodingHex(hex) else { throw .notHex }
        guard !value.isAllZero else { throw .zeroShard }
        return (id, value)
    }

    /// The file content for a shard (the caller wipes it after writing).
    public static func content(id: Int, value: SecretBytes) -> [UInt8] {
        var hex = value.hexBytes()
        defer { wipe(&hex) }
        return Array("\(prefix)\(id):".utf8) + hex
    }
}
