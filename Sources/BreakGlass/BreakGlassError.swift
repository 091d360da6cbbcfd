/// A refusal about a break-glass file: one line that names the file and what
/// is wrong with it, never a byte of its content.
public struct BreakGlassError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The operator's input is wrong (a bad key file, impossible parameters): a usage error.
        case badInput
        /// The operation could not be done or was refused (a missing or unreadable file, too few shards).
        case refused
    }

    public let description: String
    public let kind: Kind

    public init(_ description: String, kind: Kind = .refused) {
        self.description = description
        self.kind = kind
    }
}
