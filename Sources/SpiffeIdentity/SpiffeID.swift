/// A SPIFFE ID: `spiffe://<trust domain><path>`, validated per the SPIFFE
/// standard (the rules go-spiffe enforces).
///
/// Invariant: `trustDomain` is 1…255 characters of `[a-z0-9._-]`; `path` is
/// empty or a sequence of `/segment` with segments of `[a-zA-Z0-9._-]`, none
/// empty, `.` or `..`; the whole ID is at most 2048 bytes. So an ID never
/// carries a port, userinfo, query, fragment, percent-encoding or upper-case
/// trust domain.
public struct SpiffeID: Hashable, Sendable, CustomStringConvertible {
    public let trustDomain: String
    public let path: String

    public static let scheme = "spiffe://"
    public static let maximumLength = 2048
    public static let maximumTrustDomainLength = 255

    public var description: String { Self.scheme + trustDomain + path }

    public init(parsing text: String) throws(SpiffeIDError) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { throw .empty }
        guard bytes.count <= Self.maximumLength else { throw .tooLong(bytes.count) }
        let scheme = Array(Self.scheme.utf8)
        guard bytes.starts(with: scheme) else { throw .wrongScheme }
        let rest = bytes[scheme.count...]
        let slash = rest.firstIndex(of: UInt8(ascii: "/")) ?? rest.endIndex
        let domain = rest[rest.startIndex..<slash]
        guard !domain.isEmpty else { throw .missingTrustDomain }
        guard domain.count <= Self.maximumTrustDomainLength else { throw .trustDomainTooLong(domain.count) }
        for c in domain where !Self.isTrustDomainCharacter(c) {
            throw Self.classify(c, inTrustDomain: true)
        }
        let path = rest[slash...]
        if !path.isEmpty {
            // Segments between slashes; a trailing slash makes an empty last segment.
            var segment: [UInt8] = []
            for c in path.dropFirst() + [UInt8(ascii: "/")] {
                if c == UInt8(ascii: "/") {
                    guard !segment.isEmpty else { throw .emptyPathSegment }
                    guard segment != [0x2e], segment != [0x2e, 0x2e] else { throw .dotSegment }
                    segment.removeAll(keepingCapacity: true)
                } else {
                    guard Self.isPathCharacter(c) else { throw Self.classify(c, inTrustDomain: false) }
                    segment.append(c)
                }
            }
        }
        trustDomain = String(decoding: domain, as: UTF8.self)
        self.path = String(decoding: path, as: UTF8.self)
    }

    /// The ID of `path` (which must start with `/`) in `trustDomain`.
    public init(trustDomain: String, path: String) throws(SpiffeIDError) {
        try self.init(parsing: Self.scheme + trustDomain + path)
    }

    /// Whether this ID is `base` or lies below it (`base` + `/` + more): the
    /// rule SPIKE uses for roles, so `…/spike/keeper/instance-2` is a keeper.
    public func isSelfOrBelow(_ base: SpiffeID) -> Bool {
        trustDomain == base.trustDomain && (path == base.path || path.hasPrefix(base.path + "/"))
    }

    static func isTrustDomainCharacter(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2e || c == 0x2d || c == 0x5f
    }

    static func isPathCharacter(_ c: UInt8) -> Bool {
        isTrustDomainCharacter(c) || (c >= 0x41 && c <= 0x5a)
    }

    static func classify(_ c: UInt8, inTrustDomain: Bool) -> SpiffeIDError {
        switch c {
        case UInt8(ascii: ":"): inTrustDomain ? .portNotAllowed : .badPathCharacter
        case UInt8(ascii: "@"): inTrustDomain ? .userInfoNotAllowed : .badPathCharacter
        case UInt8(ascii: "?"): .queryNotAllowed
        case UInt8(ascii: "#"): .fragmentNotAllowed
        case UInt8(ascii: "%"): .percentEncodingNotAllowed
        default: inTrustDomain ? (c >= 0x41 && c <= 0x5a ? .upperCaseTrustDomain : .badTrustDomainCharacter) : .badPathCharacter
        }
    }
}

/// Why a text is not a SPIFFE ID. Messages never echo the input (it may come
/// from a peer); callers add context such as the setting or the file.
public enum SpiffeIDError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty, tooLong(Int), wrongScheme, missingTrustDomain, trustDomainTooLong(Int)
    case badTrustDomainCharacter, upperCaseTrustDomain, portNotAllowed, userInfoNotAllowed
    case queryNotAllowed, fragmentNotAllowed, percentEncodingNotAllowed
    case badPathCharacter, emptyPathSegment, dotSegment

    public var description: String {
        switch self {
        case .empty: "SPIFFE ID is empty"
        case .tooLong(let n): "SPIFFE ID is \(n) bytes (at most \(SpiffeID.maximumLength))"
        case .wrongScheme: "SPIFFE ID must start with spiffe://"
        case .missingTrustDomain: "SPIFFE ID has no trust domain"
        case .trustDomainTooLong(let n): "trust domain is \(n) characters (at most \(SpiffeID.maximumTrustDomainLength))"
        case .badTrustDomainCharacter: "trust domain may hold only a-z, 0-9, '.', '-', '_'"
        case .upperCaseTrustDomain: "trust domain must be lower case"
        case .portNotAllowed: "SPIFFE ID may not carry a port"
        case .userInfoNotAllowed: "SPIFFE ID may not carry user info"
        case .queryNotAllowed: "SPIFFE ID may not carry a query"
        case .fragmentNotAllowed: "SPIFFE ID may not carry a fragment"
        case .percentEncodingNotAllowed: "SPIFFE ID may not be percent-encoded"
        case .badPathCharacter: "path segments may hold only a-z, A-Z, 0-9, '.', '-', '_'"
        case .emptyPathSegment: "path has an empty segment (or a trailing slash)"
        case .dotSegment: "path may not hold '.' or '..' segments"
        }
    }
}
