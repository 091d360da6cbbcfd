/// What a route answers, before any I/O: an HTTP status and the exact body
/// bytes (the Keeper's and the Nexus operator routes share it).
public struct RouteResponse: Sendable, Equatable {
    public let status: Int
    public let body: [UInt8]

    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }
}
