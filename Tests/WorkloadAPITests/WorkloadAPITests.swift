import Crypto
import Foundation
import MutualTLS
import NIOConcurrencyHelpers
import NIOPosix
import SpiffeIdentity
import SwiftASN1
import Testing
import SecureMemory
import TestSupport
import X509
@testable import WorkloadAPI
import WorkloadAPIWire

/// Events of a source, awaitable in order (no sleeps: each test waits for
/// the event it needs, with a generous ceiling).
final class EventLog: Sendable {
    private let events = NIOLockedValueBox<[WorkloadAPIX509Source.Event]>([])

    func record(_ event: WorkloadAPIX509Source.Event) { events.withLockedValue { $0.append(event) } }
    var all: [WorkloadAPIX509Source.Event] { events.withLockedValue { $0 } }

    /// Waits until `matches` holds for some event recorded at index ≥ `from`; returns its index.
    @discardableResult
    func wait(from: Int = 0, timeout: Duration = .seconds(30), _ matches: (WorkloadAPIX509Source.Event) -> Bool) async throws -> Int {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            let snapshot = all
            if snapshot.count > from, let i = snapshot[from...].firstIndex(where: matches) { return i }
            try await Task.sleep(for: .milliseconds(5))
        }
        Issue.record("event not seen within \(timeout); got \(all.map(Self.name))")
        throw CancellationError()
    }

    static func name(_ e: WorkloadAPIX509Source.Event) -> String {
        switch e {
        case .updated(let s): "updated(\(s.id), gen \(s.generation))"
        case .refused(let why): "refused(\(why))"
        case .streamLost(let why, _): "lost(\(why))"
        case .expired: "expired"
        }
    }
}

func isUpdated(_ e: WorkloadAPIX509Source.Event) -> Bool { if case .updated = e { true } else { false } }
func isRefused(_ e: WorkloadAPIX509Source.Event) -> Bool { if case .refused = e { true } else { false } }
func isLost(_ e: WorkloadAPIX509Source.Event) -> Bool { if case .streamLost = e { true } else { false } }

func temporarySocket() -> String { "/tmp/wapi-\(UInt32.random(in: 0...UInt32.max)).sock" }

func der(_ c: Certificate) throws -> [UInt8] { try DERCertificates.serialize(c) }

/// One SVID message as SPIRE would send it.
func svidMessage(_ pki: DevelopmentPKI, path: String, hint: String = "", validFor: TimeInterval = 3600) throws -> X509SVID {
    let (cert, key) = try pki.issue(path: path, validFor: validFor)
    var svid = X509SVID()
    svid.spiffeID = "spiffe://\(pki.trustDomain)\(path)"
    svid.x509Svid = try der(cert)
    svid.x509SvidKey = SecretBytes(copying: Array(key.derRepresentation))
    svid.bundle = try der(pki.caCertificate)
    svid.hint = hint
    return svid
}

func response(_ svids: X509SVID...) -> X509SVIDResponse {
    var r = X509SVIDResponse()
    r.svids = svids
    return r
}

func fastOptions(_ selector: SVIDSelector = .first, wait: Duration = .seconds(30)) -> WorkloadAPIX509Source.Options {
    var o = WorkloadAPIX509Source.Options()
    o.selector = selector
    o.startupWait = wait
    o.backoff = BackoffPolicy(initial: .milliseconds(20), maximum: .milliseconds(200))
    return o
}

@Suite struct WorkloadEndpointTests {
    @Test(arguments: [
        ("unix:///tmp/spire-agent/public/api.sock", "/tmp/spire-agent/public/api.sock"),
        ("unix:/run/spire/agent.sock", "/run/spire/agent.sock"),
        ("unix:relative/agent.sock", "relative/agent.sock"),
    ])
    func accepted(address: String, path: String) throws {
        #expect(try WorkloadEndpoint(parsing: address).socketPath == path)
    }

    @Test(arguments: [
        ("tcp://127.0.0.1:8081", "only unix: sockets are supported (got tcp:)"),
        ("/tmp/agent.sock", "expected unix:///path/to/socket or unix:path/to/socket"),
        ("unix://agent/tmp/agent.sock", "unix:// addresses take no host; write unix:///absolute/path"),
        ("unix:", "no socket path"),
        ("unix:///", "no socket path"),
        ("unix:///tmp/a.sock?x=1", "a socket address has no query or fragment"),
        ("unix:///" + String(repeating: "a", count: 120), "the socket path is longer than 107 bytes"),
        (":///tmp/a.sock", "missing scheme, expected unix:"),
    ])
    func refused(address: String, reason: String) {
        #expect(throws: WorkloadAPIError.badEndpoint(address: address, reason: reason)) { try WorkloadEndpoint(parsing: address) }
    }

    @Test func environmentDefaultAndMessage() throws {
        #expect(try WorkloadEndpoint.fromEnvironment([:]).socketPath == "/tmp/spire-agent/public/api.sock")
        #expect(try WorkloadEndpoint.fromEnvironment(["SPIFFE_ENDPOINT_SOCKET": ""]).socketPath == "/tmp/spire-agent/public/api.sock")
        let error = WorkloadAPIError.badEndpoint(address: "tcp://x:1", reason: "only unix: sockets are supported (got tcp:)")
        #expect(error.description == "SPIFFE_ENDPOINT_SOCKET \"tcp://x:1\": only unix: sockets are supported (got tcp:)")
    }

    @Test func selectorParsing() {
        #expect(SVIDSelector(parsing: "") == .first)
        #expect(SVIDSelector(parsing: "internal") == .hint("internal"))
        #expect(SVIDSelector(parsing: "spiffe://spike.ist/spike/keeper/2") == .id("spiffe://spike.ist/spike/keeper/2"))
    }
}

@Suite struct DERCertificatesTests {
    @Test func splitsConcatenatedCertificatesAndRefusesDamage() throws {
        let pki = try DevelopmentPKI()
        let a = Array(try der(try pki.issue(path: "/a").certificate))
        let b = Array(try der(pki.caCertificate))
        #expect(try DERCertificates.parse(a + b, what: "x").count == 2)
        let cases: [([UInt8], String)] = [
            ([], "x: empty"),
            (Array(a.dropLast()), "x: certificate 1 is truncated"),
            (a + [0x30], "x: certificate 2 is truncated"),
            (a + [0x04, 0x00], "x: certificate 2 does not start a DER SEQUENCE"),
            ([0x30, 0x80, 0x00, 0x00], "x: certificate 1 has a malformed DER length"),
            ([0x30, 0x81, 0x05, 1, 2, 3, 4, 5], "x: certificate 1 has a non-minimal DER length"),
            ([0x30, 0x83, 0x10, 0x00, 0x00], "x: certificate 1 is larger than 65536 bytes"),
            ([0x30, 0x03, 0x02, 0x01, 0x00], "x: certificate 1 is not a valid X.509 certificate"),
        ]
        for (bytes, message) in cases {
            #expect(throws: X509SourceError.invalid(file: "x", reason: String(message.dropFirst(3)))) {
                try DERCertificates.parse(bytes, what: "x")
            }
        }
    }
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct WorkloadAPISourceTests {
    let pki: DevelopmentPKI
    init() throws { pki = try DevelopmentPKI() }

    func server(_ message: X509SVIDResponse? = nil) async throws -> DevelopmentWorkloadAPIServer {
        let server = DevelopmentWorkloadAPIServer(socketPath: temporarySocket())
        try await server.start()
        if let message { server.publish(message) }
        return server
    }

    @Test func initialFetchAndSelection() async throws {
        let server = try await server(response(
            try svidMessage(pki, path: "/spike/keeper/1", hint: "internal"),
            try svidMessage(pki, path: "/spike/keeper/2", hint: "external")))
        defer { Task { await server.stop() } }
        let endpoint = try WorkloadEndpoint(parsing: "unix://\(server.socketPath)")

        let first = try await WorkloadAPIX509Source.start(endpoint: endpoint, options: fastOptions())
        #expect(first.current.id.description == "spiffe://spike.ist/spike/keeper/1")
        #expect(first.current.generation == 1)
        #expect(first.current.bundles["spike.ist"]?.first == pki.caCertificate)
        let byHint = try await WorkloadAPIX509Source.start(endpoint: endpoint, options: fastOptions(.hint("external")))
        #expect(byHint.current.id.description == "spiffe://spike.ist/spike/keeper/2")
        let byID = try await WorkloadAPIX509Source.start(endpoint: endpoint, options: fastOptions(.id("spiffe://spike.ist/spike/keeper/2")))
        #expect(byID.current.id.description == "spiffe://spike.ist/spike/keeper/2")
        #expect(server.openStreams == 3)
        for s in [first, byHint, byID] { await s.close() }

        // Long enough for the first message to arrive and be refused on a loaded machine.
        await #expect(throws: WorkloadAPIError.noSVID(endpoint: endpoint.address, waited: .seconds(6),
                                                      lastProblem: "Workload API response refused: no SVID with hint \"missing\" among 2")) {
            _ = try await WorkloadAPIX509Source.start(endpoint: endpoint, options: fastOptions(.hint("missing"), wait: .seconds(6)))
        }
    }

    @Test func noAgentIsAClearStartupError() async throws {
        let endpoint = try WorkloadEndpoint(parsing: "unix://\(temporarySocket())")
        do {
            _ = try await WorkloadAPIX509Source.start(endpoint: endpoint, options: fastOptions(wait: .milliseconds(4500)))
            Issue.record("started without an agent")
        } catch {
            let text = error.description
            #expect(text.hasPrefix("no X.509 SVID from the Workload API at \(endpoint.address) within 4500 ms ("))
            #expect(text.contains("unavailable"))
        }
    }

    @Test func rotationReachesTheNextHandshake() async throws {
        let keeperAPI = try await server(response(try svidMessage(pki, path: "/spike/keeper/1")))
        let nexusAPI = try await server(response(try svidMessage(pki, path: "/spike/nexus")))
        let log = EventLog()
        let keeper = try await WorkloadAPIX509Source.start(
            endpoint: try WorkloadEndpoint(parsing: "unix:\(keeperAPI.socketPath)"), options: fastOptions(), onEvent: log.record)
        let nexus = try await WorkloadAPIX509Source.start(
            endpoint: try WorkloadEndpoint(parsing: "unix://\(nexusAPI.socketPath)"), options: fastOptions())
        let roots = TrustRoots()
        let server = MTLSHTTPServer(group: MultiThreadedEventLoopGroup.singleton)
        try await server.start(host: "127.0.0.1", port: 0, source: keeper, policy: .roles([.nexus], trustRoots: roots),
                               tooLargeResponse: HTTPResponseData(status: .payloadTooLarge, body: []), onRefused: { _ in },
                               responder: .immediate { request in HTTPResponseData(status: .ok, body: Array("{\"peer\":\"\(request.peer)\"}".utf8)) })
        let client = MTLSClient(group: MultiThreadedEventLoopGroup.singleton, source: nexus, serverPolicy: .roles([.keeper], trustRoots: roots))
        let url = "https://127.0.0.1:\(server.port)/v1/store/shard"

        let before = try await client.post(url, json: [], deadline: .seconds(30))
        #expect(before.peer.description == "spiffe://spike.ist/spike/keeper/1")
        #expect(before.body.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } == "{\"peer\":\"spiffe://spike.ist/spike/nexus\"}")

        let seen = log.all.count
        keeperAPI.publish(response(try svidMessage(pki, path: "/spike/keeper/rotated")))
        try await log.wait(from: seen) { if case .updated(let s) = $0 { s.generation == 2 } else { false } }
        let after = try await client.post(url, json: [], deadline: .seconds(30))
        #expect(after.peer.description == "spiffe://spike.ist/spike/keeper/rotated")

        await server.stop()
        for s in [keeper, nexus] { await s.close() }
        for s in [keeperAPI, nexusAPI] { await s.stop() }
    }

    @Test func reconnectsAfterAServerRestartKeepingTheLastSVID() async throws {
        let api = try await server(response(try svidMessage(pki, path: "/spike/keeper/1")))
        let log = EventLog()
        let source = try await WorkloadAPIX509Source.start(
            endpoint: try WorkloadEndpoint(parsing: "unix://\(api.socketPath)"), options: fastOptions(), onEvent: log.record)
        let seen = log.all.count
        await api.stop()
        let lost = try await log.wait(from: seen, isLost)
        #expect(source.current.id.description == "spiffe://spike.ist/spike/keeper/1")
        // Down for a while: several reconnection attempts fail and are reported.
        try await log.wait(from: lost + 1, isLost)
        #expect(source.current.generation == 1)

        let restarted = DevelopmentWorkloadAPIServer(socketPath: api.socketPath)
        restarted.publish(response(try svidMessage(pki, path: "/spike/keeper/after-restart")))
        try await restarted.start()
        try await log.wait(from: lost) { if case .updated(let s) = $0 { s.generation == 2 } else { false } }
        #expect(source.current.id.description == "spiffe://spike.ist/spike/keeper/after-restart")
        await source.close()
        await restarted.stop()
    }

    /// `stop` lets each open stream write its OK status before the connections
    /// close (closed first, about 1 call in 100 ended as a dropped connection).
    @Test func stopEndsOpenStreamsWithStatusOK() async throws {
        var outcomes: [String: Int] = [:]
        for _ in 0..<100 {
            let api = try await server(response(try svidMessage(pki, path: "/spike/keeper/1")))
            let connection = WorkloadAPIConnection(endpoint: try WorkloadEndpoint(parsing: "unix://\(api.socketPath)"))
            let delivered = Counter()
            let call = Task { () async -> String in
                do {
                    try await connection.stream(path: WorkloadAPIConnection.fetchX509SVID) { _ in delivered.bump() }
                    return "ended with status OK"
                } catch {
                    return "\(error)"
                }
            }
            try await until { delivered.value == 1 }
            await api.stop()
            outcomes[await call.value, default: 0] += 1
        }
        #expect(outcomes == ["ended with status OK": 100])
    }

    @Test func callsWithoutTheSecurityHeaderAreRefused() async throws {
        let api = try await server(response(try svidMessage(pki, path: "/spike/keeper/1")))
        let connection = WorkloadAPIConnection(endpoint: try WorkloadEndpoint(parsing: "unix://\(api.socketPath)"))
        let delivered = Counter()
        await #expect(throws: WorkloadAPICallError.status(code: 3, message: "security header missing from request")) {
            try await connection.stream(path: WorkloadAPIConnection.fetchX509SVID, metadata: []) { _ in delivered.bump() }
        }
        #expect(delivered.value == 0)
        #expect(api.refusedCalls == 1)
        #expect(WorkloadAPICallError.status(code: 3, message: "security header missing from request").description
            == "invalidArgument: security header missing from request")
        // With the header the same call streams (it ends when the server stops).
        let call = Task { try await connection.stream(path: WorkloadAPIConnection.fetchX509SVID) { _ in delivered.bump() } }
        try await until { delivered.value == 1 }
        await api.stop()
        try await call.value
        #expect(api.refusedCalls == 1)
    }

    @Test func malformedMessagesKeepTheLastGoodSVID() async throws {
        let api = try await server(response(try svidMessage(pki, path: "/spike/keeper/1")))
        let log = EventLog()
        let source = try await WorkloadAPIX509Source.start(
            endpoint: try WorkloadEndpoint(parsing: "unix://\(api.socketPath)"), options: fastOptions(), onEvent: log.record)
        let good = try svidMessage(pki, path: "/spike/keeper/2")
        let stranger = try DevelopmentPKI()
        var badDER = good; badDER.x509Svid = Array(good.x509Svid.dropLast(7))
        var garbage = good; garbage.x509Svid = [0x30, 0x03, 0x02, 0x01, 0x00]
        var wrongKey = good; wrongKey.x509SvidKey = try svidMessage(pki, path: "/spike/keeper/2").x509SvidKey
        var badKey = good; badKey.x509SvidKey = SecretBytes(copying: [0x30, 0x00])
        var wrongID = good; wrongID.spiffeID = "spiffe://spike.ist/spike/nexus"
        var badBundle = good; badBundle.bundle = []
        var badFederation = response(good); badFederation.federatedBundles = ["spiffe://other.example": [1, 2, 3]]
        let expired = try svidMessage(stranger, path: "/spike/keeper/2", validFor: -60)
        let cases: [(X509SVIDResponse, String)] = [
            (X509SVIDResponse(), "no SVIDs in the response"),
            (response(badDER), "x509_svid: certificate 1 is truncated"),
            (response(garbage), "x509_svid: certificate 1 is not a valid X.509 certificate"),
            (response(wrongKey), "x509_svid_key does not match the x509_svid leaf"),
            (response(badKey), "x509_svid_key: not an unencrypted PKCS#8 private key of a supported type (EC P-256/P-384, RSA)"),
            (response(wrongID), "x509_svid: the leaf is spiffe://spike.ist/spike/keeper/2, the response says spiffe://spike.ist/spike/nexus"),
            (response(badBundle), "bundle: empty"),
            (badFederation, "federated_bundles[spiffe://other.example]: certificate 1 does not start a DER SEQUENCE"),
        ]
        for (message, reason) in cases {
            let seen = log.all.count
            api.publish(message)
            let i = try await log.wait(from: seen, isRefused)
            guard case .refused(let why) = log.all[i] else { continue }
            #expect(why == "Workload API response refused: \(reason)")
            #expect(source.current.id.description == "spiffe://spike.ist/spike/keeper/1")
            #expect(source.current.generation == 1)
        }
        let seen = log.all.count
        api.publish(response(expired))
        let i = try await log.wait(from: seen, isRefused)
        if case .refused(let why) = log.all[i] { #expect(why.contains("x509_svid: the leaf expired at")) }
        #expect(!log.all.contains { if case .refused(let why) = $0 { why.contains("BEGIN") || why.contains("MII") } else { false } })

        api.publish(response(good))
        try await log.wait(from: seen) { if case .updated(let s) = $0 { s.generation == 2 } else { false } }
        #expect(source.current.id.description == "spiffe://spike.ist/spike/keeper/2")
        await source.close()
        await api.stop()
    }

    /// A received key lives in wiping storage that only its message refers
    /// to, and `wipeKeys` zeroes it there (the certificates stay).
    @Test func keyBytesAreWipedInPlace() throws {
        let sent = response(try svidMessage(pki, path: "/spike/keeper/1"))
        let message = try sent.encoded().withUnsafeBytes { try X509SVIDResponse(decoding: $0) }
        #expect(!message.svids[0].x509SvidKey.isAllZero)
        #expect(message.svids[0].x509SvidKey !== sent.svids[0].x509SvidKey)
        _ = try X509Response.snapshot(message, selecting: .first, generation: 1)
        X509Response.wipeKeys(message)
        #expect(message.svids[0].x509SvidKey.isAllZero)
        #expect(!sent.svids[0].x509SvidKey.isAllZero)
        #expect(!message.svids[0].x509Svid.allSatisfy { $0 == 0 })
    }

    @Test func anExpiredSVIDIsNotPresented() async throws {
        let api = try await server(response(try svidMessage(pki, path: "/spike/nexus", validFor: 600)))
        let nexus = try await WorkloadAPIX509Source.start(endpoint: try WorkloadEndpoint(parsing: "unix://\(api.socketPath)"), options: fastOptions())
        // A client whose clock reads just past the SVID's expiry: no real-time wait.
        let expiry = nexus.current.notAfter
        let client = MTLSClient(group: MultiThreadedEventLoopGroup.singleton, source: nexus, serverPolicy: .roles([.keeper], trustRoots: TrustRoots()),
                                now: { expiry.addingTimeInterval(0.1) })
        do {
            _ = try await client.post("https://127.0.0.1:1/x", json: [], deadline: .seconds(2))
            Issue.record("an expired SVID was used")
        } catch let error as SVIDExpired {
            #expect(error.id.description == "spiffe://spike.ist/spike/nexus")
        }
        await nexus.close()
        await api.stop()
    }

    @Test func bundleStreamFollowsUpdates() async throws {
        let api = try await server()
        let other = try DevelopmentPKI(trustDomain: "other.example")
        var first = X509BundlesResponse()
        first.bundles = ["spiffe://spike.ist": try der(pki.caCertificate)]
        api.publish(first)
        let updates = Counter(), refusals = Counter()
        let bundles = try WorkloadAPIBundleSource(endpoint: try WorkloadEndpoint(parsing: "unix://\(api.socketPath)"),
                                                  backoff: BackoffPolicy(initial: .milliseconds(20))) { event in
            if case .updated = event { updates.bump() }
            if case .refused = event { refusals.bump() }
        }
        try await until { updates.value == 1 }
        #expect(bundles.current?["spike.ist"] == [pki.caCertificate])
        var bad = X509BundlesResponse()
        bad.bundles = ["spike.ist": try der(pki.caCertificate)]
        api.publish(bad)
        try await until { refusals.value == 1 }
        #expect(bundles.current?.keys.sorted() == ["spike.ist"])
        var second = first
        second.bundles["spiffe://other.example"] = try der(other.caCertificate) + der(pki.caCertificate)
        api.publish(second)
        try await until { updates.value == 2 }
        #expect(bundles.current?["other.example"]?.count == 2)
        await bundles.close()
        await api.stop()
    }
}

func until(timeout: Duration = .seconds(30), _ condition: () -> Bool) async throws {
    let end = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < end else {
            Issue.record("condition not met within \(timeout)")
            return
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}
