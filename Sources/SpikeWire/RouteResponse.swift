import SecureMemory

/// What a route answers, before any I/O: an HTTP status and the exact body
/// bytes (the Keeper's and the Nexus operator routes share it). The body is
/// in wiping storage, since a shard answer carries shards as decimal text.
public struct RouteResponse: Sendable, Equatable {
    public let status: Int
    public let body: SecretBytes

    public init(status: Int, body: SecretBytes) {
        self.status = status
        self.body = body
    }

    /// A body of public text (errors, progress, `{}`).
    public init(status: Int, body: [UInt8]) {
        self.init(status: status, body: SecretBytes(copying: body))
    }

    /// Same status and the same bytes (for tests; not constant time in the length).
    public static func == (a: RouteResponse, b: RouteResponse) -> Bool {
        a.status == b.status && a.body.count == b.body.count && a.body.constantTimeEquals(b.body)
    }
}
