// keeper-load: a load client for a running Keeper. Opens N keep-alive mTLS
// connections and, on each, sends `POST /v1/store/shard` back to back for a
// fixed time; prints the rate and latency percentiles. Bounded in time and
// aimed only at the address given (use loopback).
//
//   keeper-load --url https://127.0.0.1:8443 --cert nexus.pem --key nexus.key \
//               [--connections 16] [--seconds 10] [--json]
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

struct Options {
    var host = "127.0.0.1", port = 8443, cert = "", key = "", connections = 16, seconds = 10.0, json = false

    init(_ args: [String]) throws {
        var i = 1
        func value() throws -> String {
            i += 1
            guard i < args.count else { throw Failure("missing value for \(args[i - 1])") }
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--url":
                let url = try value()
                guard let c = URLComponents(string: url), c.scheme == "https", let h = c.host else { throw Failure("--url must be https://host:port") }
                host = h
                port = c.port ?? 443
            case "--cert": cert = try value()
            case "--key": key = try value()
            case "--connections": guard let n = Int(try value()), (1...1024).contains(n) else { throw Failure("--connections must be 1...1024") }; connections = n
            case "--seconds": guard let s = Double(try value()), s > 0, s <= 600 else { throw Failure("--seconds must be in (0, 600]") }; seconds = s
            case "--json": json = true
            default: throw Failure("unknown option \(args[i])")
            }
            i += 1
        }
        guard !cert.isEmpty, !key.isEmpty else { throw Failure("--cert and --key are required") }
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Sends a request, waits for the whole response, records its latency, sends the next.
final class LoadHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart
    let deadline: NIODeadline
    let host: String
    var sentAt = NIODeadline.now()
    var latencies: [Int64] = []
    var errors = 0
    var finished = false
    let done: EventLoopPromise<Void>

    init(deadline: NIODeadline, host: String, done: EventLoopPromise<Void>) {
        self.deadline = deadline
        self.host = host
        self.done = done
        latencies.reserveCapacity(200_000)
    }

    func send(_ context: ChannelHandlerContext) {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/store/shard")
        head.headers.add(name: "Host", value: host)
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Content-Length", value: "2")
        sentAt = .now()
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: "{}")))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): if h.status != .ok { errors += 1 }
        case .body: break
        case .end:
            latencies.append((NIODeadline.now() - sentAt).nanoseconds)
            if NIODeadline.now() < deadline {
                send(context)
            } else {
                finished = true
                done.succeed(())
                context.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        errors += 1
        finished = true
        done.succeed(())
        context.close(promise: nil)
    }

    /// A connection the keeper closes before the run ends is an error too.
    func channelInactive(context: ChannelHandlerContext) {
        guard !finished else { return }
        errors += 1
        finished = true
        done.succeed(())
    }
}


@main
struct KeeperLoad {
    static func main() async {
        do {
            try await run(try Options(CommandLine.arguments))
        } catch {
            FileHandle.standardError.write(Data("keeper-load: \(error)\n".utf8))
            exit(64)
        }
    }

    static func run(_ o: Options) async throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(o.cert).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: o.key, format: .pem))
        // A load generator only: the server's identity is not what is measured.
        tls.certificateVerification = .none
        let context = try NIOSSLContext(configuration: tls)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let deadline = NIODeadline.now() + .nanoseconds(Int64(o.seconds * 1e9))
        var handlers: [LoadHandler] = []
        var futures: [EventLoopFuture<Void>] = []
        let start = NIODeadline.now()
        for _ in 0..<o.connections {
            let done = group.next().makePromise(of: Void.self)
            let handler = LoadHandler(deadline: deadline, host: "\(o.host):\(o.port)", done: done)
            handlers.append(handler)
            futures.append(done.futureResult)
            let channel = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: nil))
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(host: o.host, port: o.port).get()
            let h = handler
            try await channel.eventLoop.submit {
                let ctx = try channel.pipeline.syncOperations.context(handler: h)
                h.send(ctx)
            }.get()
        }
        for f in futures { try await f.get() }
        let elapsed = Double((NIODeadline.now() - start).nanoseconds) / 1e9
        let all = handlers.flatMap(\.latencies).sorted()
        let errors = handlers.reduce(0) { $0 + $1.errors }
        func pct(_ p: Double) -> Double { all.isEmpty ? 0 : Double(all[min(all.count - 1, Int(Double(all.count) * p))]) / 1e6 }
        let rate = Double(all.count) / elapsed
        if o.json {
            print(String(format: "{\"requests\":%d,\"errors\":%d,\"seconds\":%.2f,\"rate\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}",
                         all.count, errors, elapsed, rate, pct(0.5), pct(0.99), pct(1.0)))
        } else {
            print(String(format: "%d requests in %.2fs over %d connections: %.0f/s, p50 %.3f ms, p99 %.3f ms, max %.3f ms, %d errors",
                         all.count, elapsed, o.connections, rate, pct(0.5), pct(0.99), pct(1.0), errors))
        }
        try await group.shutdownGracefully()
    }
}
