import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import WorkloadAPIProto

/// The Workload API connection shared by the sources: one gRPC client over
/// the endpoint's Unix socket, and the stream-following loop both streams use.
final class WorkloadAPIConnection: Sendable {
    /// Every call carries this header; servers refuse calls without it
    /// (it proves the caller is not a browser relaying a request).
    static let securityHeader: Metadata = ["workload.spiffe.io": "true"]

    let endpoint: WorkloadEndpoint
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    let api: SpiffeWorkloadAPI.Client<HTTP2ClientTransport.Posix>
    private let connections: Task<Void, Never>

    init(endpoint: WorkloadEndpoint, reconnect: BackoffPolicy) throws(WorkloadAPIError) {
        self.endpoint = endpoint
        let transport: HTTP2ClientTransport.Posix
        do {
            transport = try HTTP2ClientTransport.Posix(
                // go-spiffe presents "localhost" as the authority on Unix sockets; so do we.
                target: .unixDomainSocket(path: endpoint.socketPath, authority: "localhost"),
                transportSecurity: .plaintext,
                config: .defaults {
                    $0.backoff = .init(initial: reconnect.initial, max: reconnect.maximum, multiplier: 2, jitter: 0.1)
                })
        } catch {
            throw .badEndpoint(address: endpoint.address, reason: "\(error)")
        }
        let client = GRPCClient(transport: transport)
        self.client = client
        api = SpiffeWorkloadAPI.Client(wrapping: client)
        connections = Task { try? await client.runConnections() }
    }

    /// Call options for the streams: fail at once while the socket is down
    /// (the follow loop backs off and reports each loss) instead of queueing.
    static var streamOptions: CallOptions {
        var options = CallOptions.defaults
        options.waitForReady = false
        return options
    }

    func close() async {
        client.beginGracefulShutdown()
        connections.cancel()
        await connections.value
    }

    /// Opens a stream with `call` again and again until cancelled: after a
    /// loss it waits (doubling from `backoff.initial` to `backoff.maximum`,
    /// back to the start once a stream delivered something) and calls `lost`.
    static func follow(backoff: BackoffPolicy, delivered: @Sendable () -> UInt64,
                       call: @Sendable () async throws -> Void,
                       lost: @Sendable (_ why: String, _ retryIn: Duration) -> Void) async {
        var delay = backoff.initial
        while !Task.isCancelled {
            let before = delivered()
            let why: String
            do {
                try await call()
                why = "the Workload API ended the stream"
            } catch {
                why = describe(error)
            }
            if Task.isCancelled { return }
            if delivered() != before { delay = backoff.initial }
            lost(why, delay)
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, backoff.maximum)
        }
    }

    static func describe(_ error: any Error) -> String {
        if let rpc = error as? RPCError {
            var text = "\(rpc.code): \(rpc.message)"
            if let cause = rpc.cause { text += " (\(cause))" }
            return text
        }
        return "\(error)"
    }
}

/// Reconnection delays: exponential from `initial` to `maximum`.
public struct BackoffPolicy: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5)) {
        self.initial = initial
        self.maximum = max(initial, maximum)
    }
}
