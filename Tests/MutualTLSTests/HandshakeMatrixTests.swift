import Dispatch
import Foundation
@testable import MutualTLS
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SecureMemory
import Testing
import TestSupport
import X509
@_spi(Testing) @testable import SpiffeIdentity

/// Identities for the matrix: one development CA for spike.ist, plus strangers.
struct Identities {
    let pki: DevelopmentPKI
    let stranger: DevelopmentPKI      // same trust domain name, unknown CA
    let foreign: DevelopmentPKI       // another trust domain
    let roots = TrustRoots()

    init() throws {
        pki = try DevelopmentPKI()
        stranger = try DevelopmentPKI()
        foreign = try DevelopmentPKI(trustDomain: "evil.example")
    }

    var bundles: [String: [Certificate]] { [pki.trustDomain: [pki.caCertificate], foreign.trustDomain: [foreign.caCertificate]] }

    func source(_ path: String, from issuer: DevelopmentPKI? = nil, flaws: DevelopmentPKI.Flaws = .init()) throws -> StaticX509Source {
        let (cert, key) = try (issuer ?? pki).issue(path: path, flaws: flaws)
        return StaticX509Source(try X509Snapshot.presenting(chain: [cert], privateKey: .init(key), bundles: bundles))
    }

    /// The peers of the matrix: name, SVID source, whether a keeper server admits it.
    func clientPeers() throws -> [(String, StaticX509Source, Bool)] {
        var expired = DevelopmentPKI.Flaws()
        expired.notValidBefore = Date().addingTimeInterval(-7200)
        expired.notValidAfter = Date().addingTimeInterval(-60)
        var ca = DevelopmentPKI.Flaws(); ca.markAsCA = true
        var two = DevelopmentPKI.Flaws(); two.extraURI = "spiffe://spike.ist/spike/bootstrap"
        return [
            ("nexus", try source("/spike/nexus"), true),
            ("bootstrap", try source("/spike/bootstrap"), true),
            ("nexus-instance", try source("/spike/nexus/instance-1"), true),
            ("keeper", try source("/spike/keeper/1"), false),
            ("pilot", try source("/spike/pilot/role/superuser"), false),
            ("other-trust-domain", try source("/spike/nexus", from: foreign), false),
            ("expired", try source("/spike/nexus", flaws: expired), false),
            ("ca-as-leaf", try source("/spike/nexus", flaws: ca), false),
            ("two-uri-sans", try source("/spike/nexus", flaws: two), false),
            ("unknown-ca", try source("/spike/nexus", from: stranger), false),
        ]
    }
}

func startServer(_ ids: Identities, source: any X509Source, policy: PeerPolicy, counter: Counter,
                 limits: MTLSHTTPServer.Limits = .init()) async throws -> MTLSHTTPServer {
    let server = MTLSHTTPServer(group: MultiThreadedEventLoopGroup.singleton)
    try await server.start(host: "127.0.0.1", port: 0, source: source, policy: policy, limits: limits,
                           tooLargeResponse: HTTPResponseData(status: .payloadTooLarge, body: []), onRefused: { _ in },
                           responder: .immediate { request in
        counter.bump()
        return HTTPResponseData(status: .ok, body: Array("{\"peer\":\"\(request.peer)\"}".utf8))
    })
    return server
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct HandshakeMatrixTests {
    let ids: Identities
    init() throws { ids = try Identities() }

    @Test func keeperServerAdmitsNexusAndBootstrapOnly() async throws {
        let counter = Counter()
        let server = try await startServer(ids, source: try ids.source("/spike/keeper/1"),
                                           policy: .roles([.nexus, .bootstrap], trustRoots: ids.roots), counter: counter)
        defer { Task { await server.stop() } }
        var admitted = 0
        for (name, source, allowed) in try ids.clientPeers() {
            let client = MTLSClient(group: MultiThreadedEventLoopGroup.singleton, source: source,
                                    serverPolicy: .roles([.keeper], trustRoots: ids.roots))
            do {
                let response = try await client.post("https://127.0.0.1:\(server.port)/x", json: Array("{}".utf8), deadline: .seconds(30))
                #expect(allowed, "\(name) should have been refused")
                #expect(response.status == 200)
                #expect(response.peer.description == "spiffe://spike.ist/spike/keeper/1")
                admitted += 1
            } catch {
                #expect(!allowed, "\(name) should have been admitted: \(error)")
            }
        }
        #expect(admitted == 3)
        // A refused handshake never reaches the HTTP layer.
        #expect(counter.value == 3)
    }

    /// An address literal is bound without the resolver, a name through it:
    /// both serve.
    @Test func listensOnAnAddressLiteralOrAName() async throws {
        let client = MTLSClient(group: MultiThreadedEventLoopGroup.singleton, source: try ids.source("/spike/nexus"),
                                serverPolicy: .roles([.keeper], trustRoots: ids.roots))
        for host in ["127.0.0.1", "localhost"] {
            let server = MTLSHTTPServer(group: MultiThreadedEventLoopGroup.singleton)
            try await server.start(host: host, port: 0, source: try ids.source("/spike/keeper/1"), policy: .roles([.nexus], trustRoots: ids.roots),
                                   tooLargeResponse: HTTPResponseData(status: .payloadTooLarge, body: []), onRefused: { _ in },
                                   responder: .immediate { _ in HTTPResponseData(status: .ok, body: Array("{}".utf8)) })
            let status: Int
            do {
                status = try await client.post("https://\(host):\(server.port)/x", json: Array("{}".utf8), deadline: .seconds(30)).status
            } catch {
                await server.stop()
                throw error
            }
            await server.stop()
            #expect(status == 200, "\(host)")
        }
    }

    /// A server started on TLS contexts built beforehand (as a nexus builds its
    /// operator server's) serves as one that builds its own.
    @Test func aServerStartsOnContextsBuiltBeforehand() async throws {
        let tls = ServerTLSContexts(source: try ids.source("/spike/keeper/1"))
        tls.startWarmUp()
        let client = MTLSClient(group: MultiThreadedEventLoopGroup.singleton, source: try ids.source("/spike/nexus"),
                                serverPolicy: .roles([.keeper], trustRoots: ids.roots))
        let server = MTLSHTTPServer(group: MultiThreadedEventLoopGroup.singleton)
        try await server.start(host: "127.0.0.1", port: 0, tls: tls, policy: .roles([.nexus], trustRoots: ids.roots),
                               tooLargeResponse: HTTPResponseData(status: .payloadTooLarge, body: []), onRefused: { _ in },
                               responder: .immediate { _ in HTTPResponseData(status: .ok, body: Array("{}".utf8)) })
        let response: MTLSClient.Response
        do {
            response = try await client.post("https://127.0.0.1:\(server.port)/x", json: Array("{}".utf8), deadline: .seconds(30))
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
        #expect(response.status == 200)
        #expect(response.peer.description == "spiffe://\(ids.pki.trustDomain)/spike/keeper/1")
    }

    /// Peer checks take the two verification queues in turn, and work held on
    /// one does not hold up the other: each side here waits for the other's signal.
    @Test func theTwoVerificationQueuesRunAtOnce() async {
        let first = DispatchSemaphore(value: 0), second = DispatchSemaphore(value: 0)
        let queues = DispatchTaskExecutor.verificationQueues
        #expect(queues.count == 2 && queues[0] !== queues[1])
        let a = Task(executorPreference: queues[0]) { first.signal(); return second.wait(timeout: .now() + 10) == .success }
        let b = Task(executorPreference: queues[1]) { second.signal(); return first.wait(timeout: .now() + 10) == .success }
        #expect(await a.value)
        #expect(await b.value)
    }

    /// The start-up warm-up's connect goes to a port nothing can listen on:
    /// the loopback refuses it, so it reaches no peer.
    @Test func theWarmUpConnectIsRefused() async {
        #expect(await MTLSClient.refusedConnect())
    }

    @Test func nexusClientTalksOnlyToKeepers() async throws {
        let counter = Counter()
        let nexus = try ids.source("/spike/nexus")
        let client = MTLSClient(group: MultiThreadedEventLoopGroup.singleton, source: nexus, serverPolicy: .roles([.keeper], trustRoots: ids.roots))
        var expired = DevelopmentPKI.Flaws()
        expired.notValidBefore = Date().addingTimeInterval(-7200)
        expired.notValidAfter = Date().addingTimeInterval(-60)
        var ca = DevelopmentPKI.Flaws(); ca.markAsCA = true
        let servers: [(String, StaticX509Source, Bool)] = [
            ("keeper", try ids.source("/spike/keeper"), true),
            ("keeper-instance", try ids.source("/spike/keeper/instance-2"), true),
            ("nexus", try ids.source("/spike/nexus"), false),
            ("bootstrap", try ids.source("/spike/bootstrap"), false),
            ("pilot", try ids.source("/spike/pilot/role/recover"), false),
            ("foreign-keeper", try ids.source("/spike/keeper", from: ids.foreign), false),
            ("expired-keeper", try ids.source("/spike/keeper", flaws: expired), false),
            ("ca-keeper", try ids.source("/spike/keeper", flaws: ca), false),
            ("unknown-ca-keeper", try ids.source("/spike/keeper", from: ids.stranger), false),
        ]
        for (name, source, allowed) in servers {
            let server = try await startServer(ids, source: source, policy: .roles([.nexus], trustRoots: ids.roots), counter: counter)
            do {
                let response = try await client.post("https://127.0.0.1:\(server.port)/x", json: Array("{}".utf8), deadline: .seconds(30))
                #expect(allowed, "\(name) should have been refused")
                #expect(response.status == 200)
            } catch let error as MTLSClientError {
                #expect(!allowed, "\(name) should have been accepted: \(error)")
                if case .handshakeRefused = error {} else { Issue.record("\(name): expected a handshake refusal, got \(error)") }
            }
            await server.stop()
        }
        #expect(counter.value == 2)
    }

    @Test func deadlinesAndLimits() async throws {
        // A listener that accepts TCP and never speaks: the deadline fires.
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = MTLSClient(group: MultiThreadedEventLoopGroup.singleton, source: try ids.source("/spike/nexus"),
                                serverPolicy: .roles([.keeper], trustRoots: ids.roots))
        let started = ContinuousClock.now
        await #expect(throws: MTLSClientError.deadlineExceeded(300)) {
            _ = try await client.post("https://127.0.0.1:\(silent.localAddress!.port!)/x", json: [], deadline: .milliseconds(300))
        }
        // Far below "never" (the listener stays silent forever); the error above already names the 300 ms deadline.
        #expect(ContinuousClock.now - started < .seconds(20))
        try await silent.close()
        // Nothing listening: the connect fails (not the deadline, not the handshake).
        let refused = await #expect(throws: MTLSClientError.self) {
            _ = try await client.post("https://127.0.0.1:1/x", json: [], deadline: .seconds(2))
        }
        switch refused {
        case .connectFailed?, nil: break  // nil: the expectation above has already failed
        case let other?: Issue.record("expected connectFailed, got \(other)")
        }
        await #expect(throws: MTLSClientError.badURL("expected https://host[:port]/path")) {
            _ = try await client.post("http://127.0.0.1:1/x", json: [], deadline: .seconds(2))
        }
        // A response over the client's limit.
        let big = MTLSHTTPServer(group: MultiThreadedEventLoopGroup.singleton)
        try await big.start(host: "127.0.0.1", port: 0, source: try ids.source("/spike/keeper"), policy: .roles([.nexus], trustRoots: ids.roots),
                            tooLargeResponse: HTTPResponseData(status: .payloadTooLarge, body: []), onRefused: { _ in },
                            responder: .immediate { _ in HTTPResponseData(status: .ok, body: [UInt8](repeating: 0x20, count: 100_000)) })
        await #expect(throws: MTLSClientError.responseTooLarge(4096)) {
            _ = try await client.post("https://127.0.0.1:\(big.port)/x", json: [], deadline: .seconds(30))
        }
        await big.stop()
    }
}

/// Real external TLS clients against the server, and SVID rotation under a running server.
@Suite(.serialized, .timeLimit(.minutes(5))) struct ExternalClientTests {
    let ids: Identities
    let dir: URL

    init() throws {
        ids = try Identities()
        dir = try temporaryDirectory("mtls")
        try ids.pki.writeBundle(into: dir)
        try ids.pki.write(path: "/spike/nexus", name: "nexus", into: dir)
        try ids.pki.write(path: "/spike/pilot/role/superuser", name: "pilot", into: dir)
        try ids.pki.write(path: "/spike/keeper/1", name: "keeper", into: dir)
    }

    func curl(_ args: [String]) async -> (status: Int32, output: String) {
        await run("/usr/bin/curl", ["-s", "-S", "--max-time", "30"] + args, timeout: 60)
    }

    @Test func curlWithNexusSucceedsWithPilotFails() async throws {
        let counter = Counter()
        let server = try await startServer(ids, source: try ids.source("/spike/keeper/1"),
                                           policy: .roles([.nexus, .bootstrap], trustRoots: ids.roots), counter: counter)
        let url = "https://127.0.0.1:\(server.port)/x"
        // -k: curl's own hostname check does not apply to SVIDs; the client certificate is what is under test.
        let ok = await curl(["-k", "--cert", dir.appendingPathComponent("nexus.pem").path, "--key", dir.appendingPathComponent("nexus.key").path,
                           "-X", "POST", "-d", "{}", url])
        #expect(ok.status == 0)
        #expect(ok.output == "{\"peer\":\"spiffe://spike.ist/spike/nexus\"}")
        let pilot = await curl(["-k", "--cert", dir.appendingPathComponent("pilot.pem").path, "--key", dir.appendingPathComponent("pilot.key").path,
                              "-X", "POST", "-d", "{}", url])
        #expect(pilot.status != 0)
        let anonymous = await curl(["-k", "-X", "POST", "-d", "{}", url])
        #expect(anonymous.status != 0)
        #expect(counter.value == 1)
        await server.stop()
    }

    /// The handshake deadline ends with the handshake: a keep-alive
    /// connection serves requests long after it, instead of being cut when
    /// the deadline would have fired (what tools/load-test's long runs need).
    @Test func keepAliveOutlivesTheHandshakeDeadline() async throws {
        var limits = MTLSHTTPServer.Limits()
        // Long enough for a handshake in a loaded TSan run; the last request comes after it.
        limits.handshakeTimeout = .seconds(3)
        let server = try await startServer(ids, source: try ids.source("/spike/keeper/1"), policy: .roles([.nexus], trustRoots: ids.roots),
                                           counter: Counter(), limits: limits)
        let url = "https://127.0.0.1:\(server.port)/x"
        // Five requests 1 s apart on one connection: the last is past the deadline.
        let r = await curl(["-k", "--cert", dir.appendingPathComponent("nexus.pem").path, "--key", dir.appendingPathComponent("nexus.key").path,
                          "--rate", "1/s", "-w", " %{num_connects}\n", "-X", "POST", "-d", "{}", url, url, url, url, url])
        let body = "{\"peer\":\"spiffe://spike.ist/spike/nexus\"}"
        #expect(r.status == 0)
        #expect(r.output == "\(body) 1\n" + String(repeating: "\(body) 0\n", count: 4))
        await server.stop()
    }

    /// A peer that never finishes its request cannot hold `stop` past its
    /// drain limit: the connection is closed then, and `stop` returns.
    @Test func stopClosesARequestThatNeverEndsAtTheDrainLimit() async throws {
        let server = try await startServer(ids, source: try ids.source("/spike/keeper/1"), policy: .roles([.nexus], trustRoots: ids.roots),
                                           counter: Counter())
        let script = PythonTLS.preamble + """
            s = context(sys.argv[2], sys.argv[3], sys.argv[4]).wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
            s.sendall(b"POST /x HTTP/1.1\\r\\nHost: k\\r\\nContent-Length: 100\\r\\n\\r\\n{")
            print("sent", flush=True)
            try:
                while s.recv(4096): pass
            except (ssl.SSLError, OSError):
                pass
            print("closed", flush=True)
            """
        let scriptFile = dir.appendingPathComponent("half.py"), out = dir.appendingPathComponent("half.out")
        try script.write(to: scriptFile, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        client.arguments = [scriptFile.path, String(server.port), dir.appendingPathComponent("nexus.pem").path,
                            dir.appendingPathComponent("nexus.key").path, dir.appendingPathComponent("bundle.pem").path]
        client.standardOutput = try FileHandle(forWritingTo: out)
        client.standardError = client.standardOutput
        let exit = ExitWatch(client)
        try client.run()
        defer { if client.isRunning { client.terminate() } }
        func text() -> String { (try? String(contentsOf: out, encoding: .utf8)) ?? "" }
        #expect(try await eventually(30) { text().contains("sent") }, "\(text())")
        let clock = ContinuousClock()
        let start = clock.now
        await server.stop(drainLimit: .milliseconds(300))
        // Bounded by the limit, not by the idle timeout (60 s): generous for a sanitizer run.
        #expect(clock.now - start < .seconds(10))
        #expect(await exit.exited(within: .seconds(30)))
        #expect(text().contains("closed"))
    }

    /// `stop` returns only once the responses already owed are written, so a
    /// process that exits right after it (Nexus after a restore) answers first.
    @Test func stopWaitsForResponsesInFlight() async throws {
        let started = Counter()
        let stopping = Counter()
        let server = MTLSHTTPServer(group: MultiThreadedEventLoopGroup.singleton)
        try await server.start(host: "127.0.0.1", port: 0, source: try ids.source("/spike/keeper/1"),
                               policy: .roles([.nexus], trustRoots: ids.roots),
                               tooLargeResponse: HTTPResponseData(status: .payloadTooLarge, body: []), onRefused: { _ in },
                               responder: .async { _ in
            started.bump()
            // Answer 300 ms after `stop` has been called, however late that is.
            while stopping.value == 0 { try? await Task.sleep(for: .milliseconds(5)) }
            try? await Task.sleep(for: .milliseconds(300))
            return HTTPResponseData(status: .ok, body: Array("{\"late\":true}".utf8))
        })
        let client = MTLSClient(group: MultiThreadedEventLoopGroup.singleton, source: try ids.source("/spike/nexus"),
                                serverPolicy: .roles([.keeper], trustRoots: ids.roots))
        let port = server.port
        let request = Task { try await client.post("https://127.0.0.1:\(port)/x", json: [], deadline: .seconds(30)) }
        guard try await eventually(30, { started.value > 0 }) else {
            Issue.record("the request never reached the responder")
            request.cancel()
            await server.stop()
            return
        }
        let clock = ContinuousClock()
        let stopCalled = clock.now
        stopping.bump()
        await server.stop()
        #expect(clock.now - stopCalled >= .milliseconds(250), "stop returned before the owed response was written")
        let response = try await request.value
        #expect(response.body.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } == "{\"late\":true}")
    }

    @Test func rotatedFilesReachNewConnections() async throws {
        let source = try FileX509Source(certFile: dir.appendingPathComponent("keeper.pem").path, keyFile: dir.appendingPathComponent("keeper.key").path,
                                        bundleFile: dir.appendingPathComponent("bundle.pem").path, trustDomains: ["spike.ist"],
                                        watchInterval: .milliseconds(50))
        let watching = Task { await source.run() }
        defer { watching.cancel() }
        let counter = Counter()
        let server = try await startServer(ids, source: source, policy: .roles([.nexus], trustRoots: ids.roots), counter: counter)
        let client = MTLSClient(group: MultiThreadedEventLoopGroup.singleton, source: try ids.source("/spike/nexus"),
                                serverPolicy: .roles([.keeper], trustRoots: ids.roots))
        let before = try await client.post("https://127.0.0.1:\(server.port)/x", json: [], deadline: .seconds(30))
        #expect(before.peer.description == "spiffe://spike.ist/spike/keeper/1")
        try ids.pki.write(path: "/spike/keeper/rotated", name: "keeper", into: dir)
        var seen = ""
        for _ in 0..<60 where seen != "spiffe://spike.ist/spike/keeper/rotated" {
            try await Task.sleep(for: .milliseconds(50))
            seen = try await client.post("https://127.0.0.1:\(server.port)/x", json: [], deadline: .seconds(30)).peer.description
        }
        #expect(seen == "spiffe://spike.ist/spike/keeper/rotated")
        await server.stop()
    }

    /// Runs tools-free python TLS clients (the standard library's ssl) as the nexus.
    func python(_ script: String, _ args: [String]) async throws -> Finished {
        let file = dir.appendingPathComponent("client-\(UUID().uuidString).py")
        try script.write(to: file, atomically: true, encoding: .utf8)
        return try await runToCompletion("/usr/bin/python3", [file.path, dir.appendingPathComponent("nexus.pem").path,
                                                              dir.appendingPathComponent("nexus.key").path,
                                                              dir.appendingPathComponent("bundle.pem").path] + args, timeout: 60)
    }

    static let connect = PythonTLS.preamble + """
        ctx = context(sys.argv[1], sys.argv[2], sys.argv[3])
        def tls(port):
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
            s.settimeout(20)
            return s
        def closed(s):
            # Seconds until the server closed the connection; None when it stayed open (20 s).
            started = time.time()
            try:
                while s.recv(4096):
                    pass
            except socket.timeout:
                return None
            except (ssl.SSLError, OSError):
                pass
            return round(time.time() - started, 1)

        """

    /// A client past mTLS that drips its request head is closed at the head
    /// deadline (every byte would reset an idle timer); one that declares a
    /// body over the limit is answered 413 before it sends it.
    @Test func requestDeadlinesAndAnEarly413() async throws {
        var limits = MTLSHTTPServer.Limits()
        limits.requestHeadTimeout = .milliseconds(800)
        limits.requestTimeout = .milliseconds(1500)
        let counter = Counter()
        let server = try await startServer(ids, source: try ids.source("/spike/keeper/1"), policy: .roles([.nexus], trustRoots: ids.roots),
                                           counter: counter, limits: limits)
        let r = try await python(Self.connect + """
            port = int(sys.argv[4])
            s = tls(port)
            started = time.time()
            try:
                for b in b"POST /x HTTP/1.1\\r\\nHost: k\\r\\nX-Slow: " + b"a" * 100:
                    s.sendall(bytes([b]))
                    time.sleep(0.1)
                print("drip: never closed")
            except (ssl.SSLError, OSError):
                print("drip: closed after %.1f s" % (time.time() - started))
            s = tls(port)
            s.sendall(b"POST /x HTTP/1.1\\r\\nHost: k\\r\\nContent-Length: 10000000\\r\\n\\r\\n")
            print("big:", s.recv(4096).split(b"\\r\\n")[0].decode(), "closed" if closed(s) is not None else "open")
            s = tls(port)
            s.sendall(b"POST /x HTTP/1.1\\r\\nHost: k\\r\\nContent-Length: 10\\r\\n\\r\\n{")
            print("slow body:", closed(s))
            """, [String(server.port)])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        // Closed at the 0.8 s head deadline (plus the 1 s TLS shutdown wait), long before the ~11 s the drip takes.
        let drip = lines.first.flatMap { $0.hasPrefix("drip: closed after ") ? Double($0.dropFirst("drip: closed after ".count).dropLast(2)) : nil }
        #expect(drip.map { $0 < 6 } == true, "\(r.stdout)")
        #expect(lines.contains("big: HTTP/1.1 413 Payload Too Large closed"), "\(r.stdout)")
        // Closed at the 1.5 s request deadline: well before the 20 s the client waits, or the 60 s idle timeout.
        let slow = lines.last.flatMap { $0.hasPrefix("slow body: ") ? Double($0.dropFirst("slow body: ".count)) : nil }
        #expect(slow.map { $0 < 10 } == true, "\(r.stdout)")
        #expect(counter.value == 0)
        await server.stop()
    }

    /// The head deadline runs from a request's first byte, not from the last
    /// response: a kept-alive connection idle for longer than it is still
    /// served (the idle timeout rules between requests). A pipelined second
    /// request keeps its own request deadline: it arrives while the first
    /// response is written, and that write must not re-arm the head deadline over it.
    @Test func keepAliveIdleAndPipelinedDeadlines() async throws {
        var limits = MTLSHTTPServer.Limits()
        limits.requestHeadTimeout = .milliseconds(800)
        limits.requestTimeout = .seconds(5)
        let counter = Counter()
        let server = try await startServer(ids, source: try ids.source("/spike/keeper/1"), policy: .roles([.nexus], trustRoots: ids.roots),
                                           counter: counter, limits: limits)
        let r = try await python(Self.connect + """
            port = int(sys.argv[4])
            def status_lines(s, n):
                data = b""
                while data.count(b"HTTP/1.1 ") < n or not data.endswith(b"}"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                # Each response starts "HTTP/1.1 <status>\\r\\n", right after the previous body.
                return ["HTTP/1.1 " + part.split(b"\\r\\n")[0].decode() for part in data.split(b"HTTP/1.1 ")[1:]]
            req = b"POST /x HTTP/1.1\\r\\nHost: k\\r\\nContent-Length: 2\\r\\n\\r\\n{}"
            s = tls(port)
            s.sendall(req)
            print("first:", status_lines(s, 1))
            time.sleep(2)  # idle, past the head deadline
            try:
                s.sendall(req)
                print("after idle:", status_lines(s, 1))
            except (ssl.SSLError, OSError) as e:
                print("after idle: closed")
            s.close()
            s = tls(port)
            # Two requests in one write; the second's body comes 2 s later, inside its
            # request deadline but past the head deadline.
            s.sendall(req + b"POST /y HTTP/1.1\\r\\nHost: k\\r\\nContent-Length: 11\\r\\n\\r\\n{")
            time.sleep(2)
            try:
                s.sendall(b'"a":"bcd"}')
                print("pipelined:", status_lines(s, 2))
            except (ssl.SSLError, OSError):
                print("pipelined: closed")
            s.close()
            """, [String(server.port)])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("first: ['HTTP/1.1 200 OK']"), "\(r.stdout)")
        #expect(r.stdout.contains("after idle: ['HTTP/1.1 200 OK']"), "\(r.stdout)")
        #expect(r.stdout.contains("pipelined: ['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']"), "\(r.stdout)")
        #expect(counter.value == 4)
        await server.stop()
    }

    /// The count of an interval's suppressed refusals goes out when the
    /// interval ends, not only when the next refusal or the stop comes.
    @Test func refusalCountsGoOutAtTheEndOfTheirInterval() async throws {
        let lines = NIOLockedValueBox<[String]>([])
        let notices = RefusalNotices(interval: .milliseconds(300), loop: MultiThreadedEventLoopGroup.singleton.next()) { line in
            lines.withLockedValue { $0.append(line) }
        }
        for i in 1...5 { notices.note("refusal \(i)") }
        #expect(lines.withLockedValue { $0 } == ["refusal 1"])
        let end = ContinuousClock.now + .seconds(20)
        while lines.withLockedValue({ $0.count }) < 2, ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(20)) }
        #expect(lines.withLockedValue { $0 } == ["refusal 1", "4 more refused since the line above (the last: refusal 5)"])
        // The next refusal starts a new interval and is passed on at once; a flush with nothing counted adds nothing.
        notices.note("refusal 6")
        notices.flush()
        #expect(lines.withLockedValue { $0 }.suffix(1) == ["refusal 6"])
        #expect(lines.withLockedValue { $0.count } == 3)
    }

    /// Connections over the cap are closed at once, and the refused handshakes
    /// of a flood (50 pilot SVIDs at a keeper) are a few lines with a count, not one line each.
    @Test func connectionCapAndRateLimitedRefusals() async throws {
        var limits = MTLSHTTPServer.Limits()
        limits.maximumConnections = 4
        limits.refusalNoticeInterval = .seconds(60)
        let lines = NIOLockedValueBox<[String]>([])
        let server = MTLSHTTPServer(group: MultiThreadedEventLoopGroup.singleton)
        try await server.start(host: "127.0.0.1", port: 0, source: try ids.source("/spike/keeper/1"), policy: .roles([.nexus], trustRoots: ids.roots),
                               limits: limits, tooLargeResponse: HTTPResponseData(status: .payloadTooLarge, body: []),
                               onRefused: { line in lines.withLockedValue { $0.append(line) } },
                               responder: .immediate { _ in HTTPResponseData(status: .ok, body: Array("{}".utf8)) })
        let r = try await python(Self.connect + """
            port = int(sys.argv[4])
            held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
            time.sleep(0.5)
            extra = socket.create_connection(("127.0.0.1", port))
            extra.settimeout(20)
            print("fifth:", closed(extra))
            for h in held: h.close()
            time.sleep(0.5)
            s = tls(port)
            s.sendall(b"POST /x HTTP/1.1\\r\\nHost: k\\r\\nContent-Length: 2\\r\\n\\r\\n{}")
            print("after:", s.recv(4096).split(b"\\r\\n")[0].decode())
            s.close()
            pilot = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            pilot.check_hostname = False
            pilot.verify_mode = ssl.CERT_NONE
            pilot.load_cert_chain(sys.argv[5], sys.argv[6])
            refused = 0
            for _ in range(50):
                try:
                    a = pilot.wrap_socket(socket.create_connection(("127.0.0.1", port)))
                    a.sendall(b"POST /x HTTP/1.1\\r\\nHost: k\\r\\n\\r\\n")
                    a.recv(10)
                except (ssl.SSLError, OSError):
                    pass
                refused += 1
            print("refused:", refused)
            """, [String(server.port), dir.appendingPathComponent("pilot.pem").path, dir.appendingPathComponent("pilot.key").path])
        #expect(r.status == 0, "\(r.stderr)")
        // At once: not at the handshake deadline (10 s) nor never.
        let fifth = r.stdout.split(separator: "\n").first { $0.hasPrefix("fifth: ") }.flatMap { Double($0.dropFirst("fifth: ".count)) }
        #expect(fifth.map { $0 < 5 } == true, "\(r.stdout)")
        #expect(r.stdout.contains("after: HTTP/1.1 200 OK"), "\(r.stdout)")
        await server.stop()
        let logged = lines.withLockedValue { $0 }
        // One line at once (the over-cap close), then everything else as one count at stop.
        #expect(logged.count == 2, "\(logged)")
        #expect(logged.first == "over 4 open connections; closed at once")
        #expect(logged.last?.hasPrefix("50 more refused since the line above (the last: ") == true, "\(logged)")
    }
}
