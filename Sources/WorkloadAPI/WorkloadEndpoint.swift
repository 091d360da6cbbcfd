/// Where the Workload API listens: `SPIFFE_ENDPOINT_SOCKET`, a Unix socket
/// given as `unix:///absolute/path` or `unix:path`.
///
/// Invariant: `socketPath` is non-empty, has no NUL byte and fits a
/// `sockaddr_un` (at most `maximumPathBytes`).
public struct WorkloadEndpoint: Sendable, Equatable, CustomStringConvertible {
    public static let variable = "SPIFFE_ENDPOINT_SOCKET"
    /// SPIRE's and go-spiffe's conventional default.
    public static let defaultAddress = "unix:///tmp/spire-agent/public/api.sock"
    /// `sun_path` holds 108 bytes on Linux, one of them the terminating NUL.
    public static let maximumPathBytes = 107

    /// The address as given.
    public let address: String
    public let socketPath: String
    public var description: String { address }

    public init(parsing address: String) throws(WorkloadAPIError) {
        func bad(_ why: String) -> WorkloadAPIError { .badEndpoint(address: address, reason: why) }
        guard let colon = address.firstIndex(of: ":") else {
            throw bad("expected unix:///path/to/socket or unix:path/to/socket")
        }
        let scheme = address[..<colon]
        guard scheme == "unix" else {
            throw bad(scheme.isEmpty ? "missing scheme, expected unix:" : "only unix: sockets are supported (got \(scheme):)")
        }
        var rest = address[address.index(after: colon)...]
        if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
            guard rest.hasPrefix("/") else { throw bad("unix:// addresses take no host; write unix:///absolute/path") }
        }
        guard !rest.isEmpty, rest != "/" else { throw bad("no socket path") }
        guard !rest.contains("?"), !rest.contains("#") else { throw bad("a socket address has no query or fragment") }
        guard !rest.utf8.contains(0) else { throw bad("the path contains a NUL byte") }
        guard rest.utf8.count <= Self.maximumPathBytes else {
            throw bad("the socket path is longer than \(Self.maximumPathBytes) bytes")
        }
        self.address = address
        socketPath = String(rest)
    }

    /// From `SPIFFE_ENDPOINT_SOCKET`, or SPIRE's default when unset or empty.
    public static func fromEnvironment(_ environment: [String: String]) throws(WorkloadAPIError) -> WorkloadEndpoint {
        let raw = environment[variable].flatMap { $0.isEmpty ? nil : $0 } ?? defaultAddress
        return try WorkloadEndpoint(parsing: raw)
    }
}

/// Which SVID to use when the Workload API offers several.
public enum SVIDSelector: Sendable, Equatable, CustomStringConvertible {
    /// The first in the response (the Workload API's default).
    case first
    /// The first whose `hint` field equals this.
    case hint(String)
    /// The one with this SPIFFE ID.
    case id(String)

    /// `spiffe://…` selects by ID; anything else by hint; empty means the first.
    public init(parsing text: String) {
        if text.isEmpty { self = .first } else if text.hasPrefix("spiffe://") { self = .id(text) } else { self = .hint(text) }
    }

    public var description: String {
        switch self {
        case .first: "the first SVID"
        case .hint(let h): "the SVID with hint \"\(h)\""
        case .id(let id): "the SVID \(id)"
        }
    }
}

public enum WorkloadAPIError: Error, Equatable, Sendable, CustomStringConvertible {
    case badEndpoint(address: String, reason: String)
    /// A response that cannot be used; the previous SVID stays.
    case badResponse(String)
    /// No usable SVID arrived within the start-up wait.
    case noSVID(endpoint: String, waited: Duration, lastProblem: String)

    static func text(_ d: Duration) -> String {
        let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
    }

    public var description: String {
        switch self {
        case .badEndpoint(let address, let reason): "\(WorkloadEndpoint.variable) \"\(address)\": \(reason)"
        case .badResponse(let why): "Workload API response refused: \(why)"
        case .noSVID(let endpoint, let waited, let problem):
            "no X.509 SVID from the Workload API at \(endpoint) within \(Self.text(waited)) (\(problem))"
        }
    }
}
