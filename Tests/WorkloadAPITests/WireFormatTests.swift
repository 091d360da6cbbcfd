import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import SecureMemory
import SpiffeIdentity
import Testing
import TestSupport
@testable import WorkloadAPI
import WorkloadAPIWire

func decodeSVIDs(_ raw: [UInt8]) throws -> X509SVIDResponse { try raw.withUnsafeBytes { try X509SVIDResponse(decoding: $0) } }
func bytesOf(_ secret: SecretBytes) -> [UInt8] { secret.withUnsafeBytes { Array($0) } }

/// The protobuf codec against encodings written by SwiftProtobuf 1.39.0 (the
/// generated code this replaced) for the same messages, and against damage.
@Suite struct ProtobufWireTests {
    /// Two SVIDs (the second with a 200-byte chain, so a two-byte length), a CRL and a federated bundle.
    static let svidResponse = bytes(hex:
        "0a3e0a217370696666653a2f2f7370696b652e6973742f7370696b652f6b65657065722f31120530030102031a03aabbcc22033001092a08696e7465726e616c"
        + "0af1010a1e7370696666653a2f2f7370696b652e6973742f7370696b652f6e6578757312c801" + String(repeating: "42", count: 200)
        + "1a0101220102" + "120205061a1d0a167370696666653a2f2f6f746865722e6578616d706c651203070809")
    static let bundlesResponse = bytes(hex: "0a010112180a127370696666653a2f2f7370696b652e69737412023000")

    @Test func decodesAndReencodesSwiftProtobufBytes() throws {
        let message = try decodeSVIDs(Self.svidResponse)
        #expect(message.svids.count == 2)
        let a = message.svids[0], b = message.svids[1]
        #expect(a.spiffeID == "spiffe://spike.ist/spike/keeper/1")
        #expect(a.x509Svid == [0x30, 0x03, 1, 2, 3])
        #expect(bytesOf(a.x509SvidKey) == [0xaa, 0xbb, 0xcc])
        #expect(a.bundle == [0x30, 0x01, 9])
        #expect(a.hint == "internal")
        #expect(b.spiffeID == "spiffe://spike.ist/spike/nexus")
        #expect(b.x509Svid == [UInt8](repeating: 0x42, count: 200))
        #expect(bytesOf(b.x509SvidKey) == [1])
        #expect(b.hint == "")
        #expect(message.crl == [[5, 6]])
        #expect(message.federatedBundles == ["spiffe://other.example": [7, 8, 9]])
        #expect(bytesOf(message.encoded()) == Self.svidResponse)

        let bundles = try Self.bundlesResponse.withUnsafeBytes { try X509BundlesResponse(decoding: $0) }
        #expect(bundles.crl == [[1]])
        #expect(bundles.bundles == ["spiffe://spike.ist": [0x30, 0x00]])
        #expect(bundles.encoded() == Self.bundlesResponse)

        // An SVID with every field at its default is an empty sub-message; the request is no bytes at all.
        var empty = X509SVIDResponse()
        empty.svids = [X509SVID()]
        #expect(bytesOf(empty.encoded()) == [0x0a, 0x00])
        #expect(EmptyRequest.encoded == [])
    }

    @Test func unknownFieldsAreSkipped() throws {
        // Field 9 as varint, fixed64, fixed32 and bytes around a known field; a repeated map key: the last wins.
        let raw: [UInt8] = [0x48, 0x96, 0x01] + [0x49] + [UInt8](repeating: 7, count: 8) + [0x4d, 1, 2, 3, 4] + [0x4a, 0x02, 0xff, 0xff]
            + [0x0a, 0x05, 0x2a, 0x03, 0x61, 0x62, 0x63]
            + [0x1a, 0x05, 0x0a, 0x01, 0x64, 0x12, 0x00] + [0x1a, 0x06, 0x0a, 0x01, 0x64, 0x12, 0x01, 0x09]
        let message = try decodeSVIDs(raw)
        #expect(message.svids.count == 1)
        #expect(message.svids[0].hint == "abc")
        #expect(message.federatedBundles == ["d": [9]])
    }

    @Test(arguments: [
        ([0x0a], "a varint runs past the end"),
        ([0x0a, 0x05, 0x01], "a field's length runs past the end"),
        ([0x48] + [UInt8](repeating: 0xff, count: 9) + [0x02], "a varint is longer than 64 bits"),
        ([0x48] + [UInt8](repeating: 0x80, count: 10) + [0x00], "a varint is longer than 64 bits"),
        ([0x0b], "field 1 has wire type 3, which is not supported"),
        ([0x02, 0x00], "field number 0 is out of range"),
        ([0x08, 0x01], "field 1 has wire type 0, expected 2 (length-delimited)"),
        ([0x0a, 0x03, 0x0a, 0x01, 0xff], "spiffe_id is not valid UTF-8"),
        ([0x0a, 0x02, 0x2a, 0x05], "a field's length runs past the end"),
        ([0x1a, 0x03, 0x0a, 0x01, 0xc3], "a federated_bundles key is not valid UTF-8"),
        ([0x4d, 1, 2], "a fixed-width field runs past the end"),
    ] as [([UInt8], String)])
    func damageIsRefused(raw: [UInt8], reason: String) {
        #expect(throws: ProtobufWire.Malformed(reason: reason)) { try decodeSVIDs(raw) }
    }
}

@Suite struct GRPCWireTests {
    func framed(_ payloads: [[UInt8]]) -> [UInt8] {
        payloads.flatMap { p in [0] + withUnsafeBytes(of: UInt32(p.count).bigEndian, Array.init) + p }
    }

    /// Messages come out whole and in order however the DATA frames split them.
    @Test func messagesSurviveAnySplit() throws {
        let payloads: [[UInt8]] = [[], [1, 2, 3], [UInt8](repeating: 9, count: 300)]
        let wire = framed(payloads)
        for chunk in [1, 2, 5, 6, 7, 64, wire.count] {
            var reader = GRPCWire.MessageReader()
            var out: [[UInt8]] = []
            for start in stride(from: 0, to: wire.count, by: chunk) {
                var buffer = ByteBuffer(bytes: wire[start..<min(start + chunk, wire.count)])
                out += try reader.consume(&buffer).map(bytesOf)
                #expect(buffer.readableBytes == 0)
            }
            #expect(out == payloads, "chunk \(chunk)")
            #expect(!reader.isMidMessage)
        }
        var reader = GRPCWire.MessageReader()
        var partial = ByteBuffer(bytes: wire.prefix(3))
        #expect(try reader.consume(&partial).isEmpty)
        #expect(reader.isMidMessage)
    }

    @Test func compressedAndOversizedMessagesAreRefused() {
        var reader = GRPCWire.MessageReader()
        var compressed = ByteBuffer(bytes: [1, 0, 0, 0, 1, 0])
        #expect(throws: GRPCWire.MessageReader.Failure.compressed) { try reader.consume(&compressed) }
        var large = ByteBuffer(bytes: [0] + withUnsafeBytes(of: UInt32(GRPCWire.maximumMessageBytes + 1).bigEndian, Array.init))
        var fresh = GRPCWire.MessageReader()
        #expect(throws: GRPCWire.MessageReader.Failure.tooLarge(GRPCWire.maximumMessageBytes + 1)) { try fresh.consume(&large) }
    }

    @Test func grpcMessageTextIsPercentEncoded() {
        #expect(GRPCWire.percentEncoded("plain text") == "plain text")
        #expect(GRPCWire.percentEncoded("100% ünïcode\n") == "100%25 %C3%BCn%C3%AFcode%0A")
        for text in ["", "a%b", "ü", "x\u{7f}\u{1}y"] { #expect(GRPCWire.percentDecoded(GRPCWire.percentEncoded(text)) == text) }
        #expect(GRPCWire.percentDecoded("bad %zz and %4") == "bad %zz and %4")
    }
}

/// The development server checked with an HTTP/2 stack that is not ours
/// (curl's nghttp2), so that a misreading of gRPC shared by our client and
/// our server would still show.
@Suite(.serialized, .timeLimit(.minutes(2))) struct DevelopmentServerWithCurlTests {
    func curl(_ socket: String, _ method: String, header: Bool, maxTime: Int) async throws -> (status: Int32, headers: String, body: [UInt8]) {
        let dir = try temporaryDirectory("curl")
        defer { try? FileManager.default.removeItem(at: dir) }
        let request = dir.appendingPathComponent("request"), body = dir.appendingPathComponent("body"), headers = dir.appendingPathComponent("headers")
        try Data([0, 0, 0, 0, 0]).write(to: request)
        var args = ["-sS", "--http2-prior-knowledge", "--unix-socket", socket, "--max-time", "\(maxTime)",
                    "-H", "content-type: application/grpc", "-H", "te: trailers",
                    "--data-binary", "@\(request.path)", "-o", body.path, "-D", headers.path]
        if header { args += ["-H", "workload.spiffe.io: true"] }
        let r = try await runToCompletion("/usr/bin/curl", args + ["http://localhost/SpiffeWorkloadAPI/\(method)"], timeout: 20)
        let h = (try? String(contentsOf: headers, encoding: .utf8)) ?? ""
        return (r.status, h.lowercased(), Array((try? Data(contentsOf: body)) ?? Data()))
    }

    @Test func servesTheStreamAndRefusesACallWithoutTheHeader() async throws {
        let pki = try DevelopmentPKI()
        let api = DevelopmentWorkloadAPIServer(socketPath: temporarySocket())
        try await api.start()
        let sent = response(try svidMessage(pki, path: "/spike/keeper/1", hint: "h"))
        api.publish(sent)

        let refused = try await curl(api.socketPath, "FetchX509SVID", header: false, maxTime: 10)
        #expect(refused.status == 0)
        #expect(refused.headers.contains("http/2 200"))
        #expect(refused.headers.contains("content-type: application/grpc"))
        #expect(refused.headers.contains("grpc-status: 3"))
        #expect(refused.headers.contains("grpc-message: security header missing from request"))
        #expect(refused.body.isEmpty)
        #expect(api.refusedCalls == 1)

        // A stream stays open: curl gives up after its --max-time (exit 28) holding one message.
        // 5 s: the message must arrive before it, also under ThreadSanitizer on a loaded machine.
        let streamed = try await curl(api.socketPath, "FetchX509SVID", header: true, maxTime: 5)
        #expect(streamed.status == 28)
        #expect(streamed.headers.contains("http/2 200"))
        try #require(streamed.body.count > 5, "no message within curl's --max-time")
        #expect(Array(streamed.body.prefix(5)) == [0] + withUnsafeBytes(of: UInt32(streamed.body.count - 5).bigEndian, Array.init))
        let got = try decodeSVIDs(Array(streamed.body.dropFirst(5)))
        #expect(got.svids.count == 1)
        #expect(got.svids[0].spiffeID == "spiffe://spike.ist/spike/keeper/1")
        #expect(got.svids[0].hint == "h")
        #expect(got.svids[0].x509Svid == sent.svids[0].x509Svid)
        #expect(bytesOf(got.svids[0].x509SvidKey) == bytesOf(sent.svids[0].x509SvidKey))

        let jwt = try await curl(api.socketPath, "FetchJWTSVID", header: true, maxTime: 10)
        #expect(jwt.headers.contains("grpc-status: 12"))
        await api.stop()
    }
}

/// A server that answers every call with fixed frames: what a broken or
/// hostile Workload API could send.
final class ScriptedHTTP2Server: Sendable {
    typealias Stream = NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>
    let socketPath = temporarySocket()
    private let listener: NIOLockedValueBox<(any Channel)?> = NIOLockedValueBox(nil)
    private let task: NIOLockedValueBox<Task<Void, Never>?> = NIOLockedValueBox(nil)

    func start(_ answer: @escaping @Sendable () -> [HTTP2Frame.FramePayload]) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .server) { stream in
                        stream.eventLoop.makeCompletedFuture { try Stream(wrappingChannelSynchronously: stream) }
                    }
                }
            }
        listener.withLockedValue { $0 = server.channel }
        task.withLockedValue {
            $0 = Task {
                _ = try? await server.executeThenClose { connections in
                    try await withThrowingDiscardingTaskGroup { group in
                        for try await multiplexer in connections {
                            group.addTask {
                                try? await withThrowingDiscardingTaskGroup { streams in
                                    for try await stream in multiplexer.inbound {
                                        streams.addTask {
                                            _ = try? await stream.executeThenClose { inbound, outbound in
                                                var requests = inbound.makeAsyncIterator()
                                                _ = try await requests.next()
                                                for frame in answer() { try await outbound.write(frame) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    func stop() async {
        try? await listener.withLockedValue { $0 }?.close()
        await task.withLockedValue { $0 }?.value
        unlink(socketPath)
    }
}

@Suite(.serialized, .timeLimit(.minutes(2))) struct HostileWorkloadAPITests {
    static let ok: HPACKHeaders = [":status": "200", "content-type": "application/grpc"]
    static func headers(_ h: HPACKHeaders, end: Bool = false) -> HTTP2Frame.FramePayload { .headers(.init(headers: h, endStream: end)) }
    static func data(_ bytes: [UInt8], end: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(bytes: bytes)), endStream: end))
    }
    static let message: [UInt8] = [0, 0, 0, 0, 2, 0x0a, 0x00]

    @Test(arguments: [
        ([headers([":status": "503", "content-type": "text/plain"], end: true)], "internal: the server answered HTTP status 503, not 200"),
        ([headers([":status": "200", "content-type": "application/json"], end: true)], "internal: the server answered with content-type application/json, not gRPC"),
        ([headers(ok), data(message, end: true)], "internal: the stream ended without a grpc-status"),
        ([headers(ok), headers(["x": "y"], end: true)], "internal: the stream ended without a grpc-status"),
        ([headers(ok), headers(["grpc-status": "ok"], end: true)], "internal: grpc-status \"ok\" is not a number"),
        ([headers(ok), data([1, 0, 0, 0, 1, 0])], "internal: the server sent a compressed message, which this client did not offer to accept"),
        ([headers(ok), data([0, 0x7f, 0, 0, 0])], "resourceExhausted: a 2130706432-byte message is larger than the 4194304-byte limit"),
        ([headers(ok), data([0, 0, 0, 0, 9, 1]), headers(["grpc-status": "0"], end: true)], "internal: the stream ended inside a message"),
        ([headers([":status": "200", "content-type": "application/grpc", "grpc-status": "7", "grpc-message": "no %C3%BC"], end: true)],
         "permissionDenied: no ü"),
        ([headers(ok), headers(["grpc-status": "99"], end: true)], "status 99: "),
        ([headers(ok), .rstStream(.refusedStream)], "unavailable: "),
    ] as [([HTTP2Frame.FramePayload], String)])
    func brokenAnswersEndTheCallWithAReason(frames: [HTTP2Frame.FramePayload], reason: String) async throws {
        let server = ScriptedHTTP2Server()
        try await server.start { frames }
        let connection = WorkloadAPIConnection(endpoint: try WorkloadEndpoint(parsing: "unix://\(server.socketPath)"))
        do {
            try await connection.stream(path: WorkloadAPIConnection.fetchX509SVID) { _ in }
            Issue.record("the call succeeded")
        } catch {
            #expect(error.description.hasPrefix(reason), "\(error.description)")
        }
        await server.stop()
    }

    /// A server that ends the stream properly after one message: the
    /// message is delivered and the call returns without an error.
    @Test func aCleanEndDeliversAndReturns() async throws {
        let clean = ScriptedHTTP2Server()
        try await clean.start { [Self.headers(Self.ok), Self.data(Self.message), Self.headers(["grpc-status": "0"], end: true)] }
        let delivered = Counter()
        try await WorkloadAPIConnection(endpoint: try WorkloadEndpoint(parsing: "unix://\(clean.socketPath)"))
            .stream(path: WorkloadAPIConnection.fetchX509SVID) { body in
                if bytesOf(body) == [0x0a, 0x00] { delivered.bump() }
            }
        #expect(delivered.value == 1)
        await clean.stop()
    }
}
