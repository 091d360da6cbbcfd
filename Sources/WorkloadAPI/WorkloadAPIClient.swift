import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import MutualTLS
import SecureMemory
import WorkloadAPIWire

/// Why a Workload API call ended other than by the server closing the
/// stream with status OK. The descriptions start with the gRPC code name, as
/// SPIRE's and go-spiffe's logs do.
enum WorkloadAPICallError: Error, Equatable, CustomStringConvertible {
    /// The socket could not be reached, or the connection or stream dropped.
    case unavailable(String)
    /// The server ended the call with this status.
    case status(code: Int, message: String)
    /// The server broke the gRPC protocol.
    case protocolViolation(String)

    var description: String {
        switch self {
        case .unavailable(let why): "unavailable: \(why)"
        case .status(let code, let message):
            "\(GRPCWire.StatusCode(rawValue: code).map { "\($0)" } ?? "status \(code)"): \(message)"
        case .protocolViolation(let why): "internal: \(why)"
        }
    }
}

/// One Workload API endpoint and the server-streaming calls both sources
/// make on it. Each call has its own HTTP/2 connection over the Unix
/// socket: a source follows one stream at a time and reconnects after every
/// loss anyway, so there is nothing to share.
final class WorkloadAPIConnection: Sendable {
    /// Every call carries this header; servers refuse calls without it
    /// (it proves the caller is not a browser relaying a request).
    static let securityHeader = ("workload.spiffe.io", "true")
    /// go-spiffe presents "localhost" as the authority on Unix sockets; so do we.
    static let authority = "localhost"
    static let connectTimeout = TimeAmount.seconds(5)
    static let fetchX509SVID = "/SpiffeWorkloadAPI/FetchX509SVID"
    static let fetchX509Bundles = "/SpiffeWorkloadAPI/FetchX509Bundles"

    let endpoint: WorkloadEndpoint
    private let group: any EventLoopGroup

    init(endpoint: WorkloadEndpoint, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.endpoint = endpoint
        self.group = group
    }

    /// Calls `path` with an empty request and hands each response message to
    /// `onMessage` (its buffer is wiped when the call returns). Returns when
    /// the server ends the stream with status OK; throws otherwise.
    func stream(path: String, metadata: [(String, String)] = [securityHeader],
                onMessage: (SecretBytes) -> Void) async throws(WorkloadAPICallError) {
        let channel: any Channel, multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>
        do {
            (channel, multiplexer) = try await ClientBootstrap(group: group)
                .connectTimeout(Self.connectTimeout)
                .channelOption(.allocator, value: WipingAllocator.shared)  // the SVID key's frames
                .connect(unixDomainSocketPath: endpoint.socketPath) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        // Servers do not open streams to a client; any that did would be left idle.
                        let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .client) {
                            $0.eventLoop.makeSucceededVoidFuture()
                        }
                        return (channel, multiplexer)
                    }
                }
        } catch {
            throw .unavailable("cannot connect to \(endpoint.socketPath) (\(error))")
        }
        defer { channel.close(promise: nil) }
        do {
            try await withTaskCancellationHandler {
                let stream = try await multiplexer.openStream { stream in
                    stream.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(wrappingChannelSynchronously: stream)
                    }
                }
                try await stream.executeThenClose { inbound, outbound in
                    let headers = GRPCWire.requestHeaders(path: path, authority: Self.authority, metadata: metadata)
                    try await outbound.write(.headers(.init(headers: headers)))
                    let request = EmptyRequest.encoded.withUnsafeBytes { GRPCWire.frame($0, allocator: channel.allocator) }
                    try await outbound.write(.data(.init(data: .byteBuffer(request), endStream: true)))
                    try await Self.readResponse(inbound, onMessage: onMessage)
                }
            } onCancel: {
                channel.close(promise: nil)
            }
        } catch let error as WorkloadAPICallError {
            throw error
        } catch {
            throw .unavailable("the stream failed (\(error))")
        }
    }

    /// Response headers, messages, then trailers (or headers alone: "trailers-only").
    private static func readResponse(_ inbound: NIOAsyncChannelInboundStream<HTTP2Frame.FramePayload>,
                                     onMessage: (SecretBytes) -> Void) async throws {
        var sawHeaders = false
        var reader = GRPCWire.MessageReader()
        for try await payload in inbound {
            switch payload {
            case .headers(let frame) where !sawHeaders:
                try checkResponseHeaders(frame.headers)
                sawHeaders = true
                if frame.endStream { return try checkStatus(frame.headers) }
            case .headers(let frame):
                guard !reader.isMidMessage else { throw WorkloadAPICallError.protocolViolation("the stream ended inside a message") }
                return try checkStatus(frame.headers)
            case .data(let frame):
                // NIO's HTTP/2 state machine already refuses DATA before HEADERS;
                // checked again so no message of an unchecked response is read.
                guard sawHeaders else { throw WorkloadAPICallError.protocolViolation("a message arrived before the response headers") }
                guard case .byteBuffer(var data) = frame.data else { continue }
                do {
                    for message in try reader.consume(&data) { onMessage(message) }
                } catch .compressed {
                    throw WorkloadAPICallError.protocolViolation("the server sent a compressed message, which this client did not offer to accept")
                } catch .tooLarge(let length) {
                    throw WorkloadAPICallError.status(
                        code: GRPCWire.StatusCode.resourceExhausted.rawValue,
                        message: "a \(length)-byte message is larger than the \(GRPCWire.maximumMessageBytes)-byte limit")
                }
                if frame.endStream { throw WorkloadAPICallError.protocolViolation("the stream ended without a grpc-status") }
            case .rstStream(let code):
                throw WorkloadAPICallError.unavailable("the server reset the stream (\(code))")
            default:
                continue
            }
        }
        throw WorkloadAPICallError.unavailable("the connection closed before the stream ended")
    }

    private static func checkResponseHeaders(_ headers: HPACKHeaders) throws {
        let status = headers.first(name: ":status") ?? "none"
        guard status == "200" else { throw WorkloadAPICallError.protocolViolation("the server answered HTTP status \(status), not 200") }
        let type = headers.first(name: "content-type") ?? "none"
        guard type == GRPCWire.contentType || type.hasPrefix(GRPCWire.contentType + "+") || type.hasPrefix(GRPCWire.contentType + ";") else {
            throw WorkloadAPICallError.protocolViolation("the server answered with content-type \(type), not gRPC")
        }
    }

    private static func checkStatus(_ trailers: HPACKHeaders) throws {
        guard let text = trailers.first(name: "grpc-status") else {
            throw WorkloadAPICallError.protocolViolation("the stream ended without a grpc-status")
        }
        guard let code = Int(text), code >= 0 else { throw WorkloadAPICallError.protocolViolation("grpc-status \"\(text)\" is not a number") }
        guard code != GRPCWire.StatusCode.ok.rawValue else { return }
        throw WorkloadAPICallError.status(code: code, message: GRPCWire.percentDecoded(trailers.first(name: "grpc-message") ?? ""))
    }

    /// Opens a stream with `call` again and again until cancelled: after a
    /// loss it waits (doubling from `backoff.initial` to `backoff.maximum`,
    /// back to the start once a stream delivered something) and calls `lost`.
    static func follow(backoff: BackoffPolicy, delivered: @Sendable () -> UInt64,
                       call: @Sendable () async throws(WorkloadAPICallError) -> Void,
                       lost: @Sendable (_ why: String, _ retryIn: Duration) -> Void) async {
        var delay = backoff.initial
        while !Task.isCancelled {
            let before = delivered()
            let why: String
            do {
                try await call()
                why = "the Workload API ended the stream"
            } catch {
                why = error.description
            }
            if Task.isCancelled { return }
            if delivered() != before { delay = backoff.initial }
            lost(why, delay)
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, backoff.maximum)
        }
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
