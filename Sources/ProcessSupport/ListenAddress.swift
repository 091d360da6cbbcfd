/// A `[host]:port` listen address (`:8443`, `host:8443`, `[::1]:8443`): the one
/// parser for every listen setting and flag.
///
/// Invariant: `port` is 0...65535 (0 picks a free port); `host` has no brackets.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        case noColon(String), badPort(String)
        public var description: String {
            switch self {
            case .noColon(let raw): "expected [host]:port (got \"\(raw)\")"
            case .badPort(let raw): "port must be 0...65535 (got \"\(raw)\")"
            }
        }
    }

    /// An empty host becomes `defaultHost`.
    public static func parse(_ raw: String, defaultHost: String) throws(Problem) -> ListenAddress {
        guard let colon = raw.lastIndex(of: ":") else { throw .noColon(raw) }
        var host = String(raw[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let port = Int(raw[raw.index(after: colon)...]), (0...65535).contains(port) else { throw .badPort(raw) }
        return ListenAddress(host: host.isEmpty ? defaultHost : host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
