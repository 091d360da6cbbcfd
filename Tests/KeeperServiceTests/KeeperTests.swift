import Foundation
import Logging
import MutualTLS
import NIOPosix
import SecureMemory
import SpikeWire
import Testing
import TestSupport
@testable import KeeperService
@_spi(Testing) @testable import SpiffeIdentity

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func secret(_ s: String) -> SecretBytes { SecretBytes(copying: Array(s.utf8)) }
let shardA: [UInt8] = Array(1...32)
let shardB: [UInt8] = (0..<32).map { UInt8(255 - $0) }
func json(_ shard: [UInt8]) -> String { "{\"shard\":[" + shard.map(String.init).joined(separator: ",") + "]}" }
let nexus = try! SpiffeID(parsing: "spiffe://spike.ist/spike/nexus")
let bootstrap = try! SpiffeID(parsing: "spiffe://spike.ist/spike/bootstrap")
let pilot = try! SpiffeID(parsing: "spiffe://spike.ist/spike/pilot/role/superuser")

/// Every bad contribute body, and why it is bad. Each must give 400
/// {"err":"api_bad_request"} and leave the held shard alone.
let badContributeBodies: [(String, String)] = [
    ("empty", ""),
    ("not JSON", "shard please"),
    ("truncated", "{\"shard\":[1,2,3"),
    ("array body", "[1,2,3]"),
    ("base64 string", "{\"shard\":\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\"}"),
    ("31 elements", json(Array(shardA.prefix(31)))),
    ("33 elements", json(shardA + [1])),
    ("empty array", "{\"shard\":[]}"),
    ("element 256", json(Array(shardA.prefix(31)) + [0]).replacingOccurrences(of: ",0]", with: ",256]")),
    ("negative element", json(Array(shardA.prefix(31)) + [0]).replacingOccurrences(of: ",0]", with: ",-1]")),
    ("fraction", json(Array(shardA.prefix(31)) + [0]).replacingOccurrences(of: ",0]", with: ",1.5]")),
    ("exponent", json(Array(shardA.prefix(31)) + [0]).replacingOccurrences(of: ",0]", with: ",1e1]")),
    ("string element", json(Array(shardA.prefix(31)) + [0]).replacingOccurrences(of: ",0]", with: ",\"7\"]")),
    ("null shard", "{\"shard\":null}"),
    ("missing shard", "{\"other\":1}"),
    ("all zero", json([UInt8](repeating: 0, count: 32))),
    ("duplicate key", "{\"shard\":\(json(shardA).dropFirst(9).dropLast()),\"shard\":\(json(shardB).dropFirst(9).dropLast())}"),
    ("trailing garbage", json(shardA) + "x"),
    ("capitalised key", "{\"Shard\":" + json(shardA).dropFirst(9)),
]

@Suite struct KeeperRoutesTests {
    let routes = KeeperRoutes(slot: ShardSlot(), trustRoots: TrustRoots())

    func call(_ uri: String, _ body: String, _ peer: SpiffeID = nexus, method: String = "POST") -> (Int, String) {
        let r = routes.handle(method: method, uri: uri, body: secret(body), peer: peer)
        return (r.status, r.body.withUnsafeBytes { String(decoding: $0, as: UTF8.self) })
    }

    @Test func happyPath() {
        #expect(call("/v1/store/shard", "{}") == (404, "{\"shard\":null,\"Err\":\"api_not_found\"}"))
        #expect(call("/v1/store/contribute", json(shardA), bootstrap) == (200, "{}"))
        #expect(call("/v1/store/shard", "{}") == (200, "{\"shard\":[" + shardA.map(String.init).joined(separator: ",") + "],\"Err\":\"\"}"))
        #expect(call("/v1/store/contribute", json(shardB), nexus) == (200, "{}"))
        #expect(call("/v1/store/shard", "{\"anything\":[1,{}]}").1.hasPrefix("{\"shard\":[255,254,"))
        // Unknown fields are ignored.
        #expect(call("/v1/store/contribute", "{\"extra\":\"x\"," + json(shardA).dropFirst()) == (200, "{}"))
    }

    @Test func badInputChangesNothing() {
        #expect(call("/v1/store/contribute", json(shardA)) == (200, "{}"))
        for (why, body) in badContributeBodies {
            let (status, reply) = call("/v1/store/contribute", body)
            #expect(status == 400, "\(why)")
            #expect(reply == "{\"err\":\"api_bad_request\"}", "\(why)")
        }
        #expect(call("/v1/store/shard", "{}").1.hasPrefix("{\"shard\":[1,2,3,"))
    }

    @Test func routingAndRoles() {
        let badRequest = (400, "{\"err\":\"api_bad_request\"}")
        #expect(call("/v1/store/shard", "", method: "GET") == badRequest)
        #expect(call("/v1/store/contribute", json(shardA), method: "PUT") == badRequest)
        #expect(call("/v1/store/shard?action=get", "{}") == badRequest)
        #expect(call("/v1/store/contribute?action=x", json(shardA)) == badRequest)
        #expect(call("/v1/store", "{}") == badRequest)
        #expect(call("/v1/store/shard/", "{}") == badRequest)
        #expect(call("/v1/store/shard", "{}", bootstrap) == (401, "{\"shard\":null,\"Err\":\"access_unauthorized\"}"))
        #expect(call("/v1/store/shard", "{}", pilot) == (401, "{\"shard\":null,\"Err\":\"access_unauthorized\"}"))
        #expect(call("/v1/store/contribute", json(shardA), pilot) == (401, "{\"err\":\"access_unauthorized\"}"))
        #expect(call("/v1/store/shard", "not json") == (400, "{\"shard\":null,\"Err\":\"api_bad_request\"}"))
        #expect(call("/v1/store/shard", "") == (400, "{\"shard\":null,\"Err\":\"api_bad_request\"}"))
        #expect(call("/v1/store/shard", "[]") == (400, "{\"shard\":null,\"Err\":\"api_bad_request\"}"))
        // As a Go keeper: an empty action is the route itself, `null` an empty request.
        #expect(call("/v1/store/contribute?action=", json(shardA)) == (200, "{}"))
        #expect(call("/v1/store/shard?action=", "{}").0 == 200)
        #expect(call("/v1/store/shard", "null").0 == 200)
        #expect(call("/v1/store/shard", " null ").0 == 200)
        #expect(call("/v1/store/shard?action=&x=1", "{}") == badRequest)
        #expect(call("/v1/store/contribute", "null") == badRequest)
    }

    @Test func slotWipes() {
        let slot = ShardSlot()
        slot.store(secret(String(repeating: "x", count: 32)))
        #expect(slot.isHeld && !slot.bufferIsZero)
        slot.wipe()
        #expect(!slot.isHeld && slot.bufferIsZero)
    }
}

/// A keeper on loopback over real mTLS, with clients of every role.
struct KeeperFixture {
    let pki: DevelopmentPKI
    let keeper: KeeperServer
    let url: String

    init() async throws {
        pki = try DevelopmentPKI()
        keeper = KeeperServer(source: StaticX509Source(try pki.snapshot(path: "/spike/keeper/1")), trustRoots: TrustRoots(),
                              logger: Logger(label: "test-keeper"), group: MultiThreadedEventLoopGroup.singleton)
        try await keeper.start(host: "127.0.0.1", port: 0)
        url = "https://127.0.0.1:\(keeper.port)"
    }

    func client(_ path: String) throws -> MTLSClient {
        MTLSClient(group: MultiThreadedEventLoopGroup.singleton, source: StaticX509Source(try pki.snapshot(path: path)),
                   serverPolicy: .roles([.keeper], trustRoots: TrustRoots()))
    }

    func post(_ client: MTLSClient, _ route: String, _ body: String) async throws -> (Int, String) {
        let r = try await client.post(url + route, json: bytes(body), deadline: .seconds(30))
        return (r.status, r.body.withUnsafeBytes { String(decoding: $0, as: UTF8.self) })
    }
}

@Suite(.serialized, .timeLimit(.minutes(5))) struct KeeperOverTLSTests {
    @Test func everyRouteRoleAndBadInput() async throws {
        let f = try await KeeperFixture()
        let n = try f.client("/spike/nexus"), b = try f.client("/spike/bootstrap")
        #expect(try await f.post(n, "/v1/store/shard", "{}") == (404, "{\"shard\":null,\"Err\":\"api_not_found\"}"))
        #expect(try await f.post(b, "/v1/store/shard", "{}") == (401, "{\"shard\":null,\"Err\":\"access_unauthorized\"}"))
        #expect(try await f.post(b, "/v1/store/contribute", json(shardA)) == (200, "{}"))
        let held = "{\"shard\":[" + shardA.map(String.init).joined(separator: ",") + "],\"Err\":\"\"}"
        #expect(try await f.post(n, "/v1/store/shard", "{}") == (200, held))
        for (why, body) in badContributeBodies {
            for client in [n, b] {
                let (status, reply) = try await f.post(client, "/v1/store/contribute", body)
                #expect(status == 400 && reply == "{\"err\":\"api_bad_request\"}", "\(why)")
            }
        }
        #expect(try await f.post(n, "/v1/store/shard", "{}") == (200, held))
        #expect(try await f.post(n, "/v1/store/shard?action=x", "{}") == (400, "{\"err\":\"api_bad_request\"}"))
        #expect(try await f.post(n, "/v1/unknown", "{}") == (400, "{\"err\":\"api_bad_request\"}"))
        // Over the body limit: 413, shard unchanged.
        let huge = "{\"pad\":\"" + String(repeating: "x", count: 10_000) + "\"}"
        #expect(try await f.post(n, "/v1/store/contribute", huge) == (413, "{\"err\":\"api_bad_request\"}"))
        #expect(try await f.post(n, "/v1/store/shard", "{}") == (200, held))
        // Keeper and pilot peers never get an HTTP answer: the keeper refuses the
        // handshake and closes the connection (a refused connect would be .connectFailed).
        for path in ["/spike/keeper/2", "/spike/pilot/role/superuser", "/spike/pilot/role/recover"] {
            await #expect(throws: MTLSClientError.connectionClosed) { _ = try await f.post(try f.client(path), "/v1/store/shard", "{}") }
        }
        await f.keeper.stop()
        #expect(f.keeper.slot.bufferIsZero && !f.keeper.slot.isHeld)
    }

    /// Hundreds of requests across dozens of connections: every fetch returns
    /// one of the contributed shards intact, never a mix.
    @Test func concurrentContributeAndFetch() async throws {
        let f = try await KeeperFixture()
        let n = try f.client("/spike/nexus"), b = try f.client("/spike/bootstrap")
        let shards: [[UInt8]] = (0..<8).map { k in (0..<32).map { UInt8((k * 32 + $0) % 255 + 1) } }
        _ = try await f.post(b, "/v1/store/contribute", json(shards[0]))
        let valid = Set(shards.map { "{\"shard\":[" + $0.map(String.init).joined(separator: ",") + "],\"Err\":\"\"}" })
        // 400 requests, 32 in flight at any time: enough interleaving to catch a torn
        // shard, without queueing hundreds of handshakes that would starve the
        // other tests running in this process (and trip their deadlines).
        let total = 400, inFlight = 32
        let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
            func request(_ i: Int) {
                group.addTask {
                    if i % 3 == 0 {
                        return try await f.post(i % 2 == 0 ? n : b, "/v1/store/contribute", json(shards[i % shards.count])) == (200, "{}")
                    }
                    let (status, body) = try await f.post(n, "/v1/store/shard", "{}")
                    return status == 200 && valid.contains(body)
                }
            }
            for i in 0..<inFlight { request(i) }
            var next = inFlight
            var all: [Bool] = []
            for try await ok in group {
                all.append(ok)
                if next < total { request(next); next += 1 }
            }
            return all
        }
        #expect(outcomes.count == total)
        #expect(outcomes.allSatisfy { $0 })
        await f.keeper.stop()
    }
}

/// The real `spike-recovery keeper` process, queried with curl.
@Suite(.serialized, .timeLimit(.minutes(5))) struct KeeperProcessTests {
    static let binary = BuiltCLI.path

    @Test func curlFetchesTheShardFromARunningKeeper() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build the CLI first: swift build")
        let dir = try temporaryDirectory("keeper")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pki = try DevelopmentPKI()
        try pki.writeBundle(into: dir)
        for (name, path) in [("keeper", "/spike/keeper/1"), ("nexus", "/spike/nexus"), ("bootstrap", "/spike/bootstrap")] {
            try pki.write(path: path, name: name, into: dir)
        }
        let port = freePort()
        let keeper = Process()
        keeper.executableURL = URL(fileURLWithPath: Self.binary)
        keeper.arguments = ["keeper"]
        keeper.environment = [
            "SPIKE_SVID_CERT_FILE": dir.appendingPathComponent("keeper.pem").path,
            "SPIKE_SVID_KEY_FILE": dir.appendingPathComponent("keeper.key").path,
            "SPIKE_SVID_BUNDLE_FILE": dir.appendingPathComponent("bundle.pem").path,
            "SPIKE_KEEPER_TLS_PORT": "127.0.0.1:\(port)",
        ]
        let log = Pipe()
        keeper.standardError = log
        let keeperExit = ExitWatch(keeper)
        try keeper.run()
        defer { if keeper.isRunning { keeper.terminate() } }
        func curl(_ who: String, _ route: String, _ body: String, headers: Bool = false) async -> String {
            await run("/usr/bin/curl", ["-s", "-k", "--max-time", "5", "--retry", "20", "--retry-connrefused", "--retry-delay", "0"]
                + (headers ? ["-i"] : [])
                + ["--cert", dir.appendingPathComponent("\(who).pem").path, "--key", dir.appendingPathComponent("\(who).key").path,
                   "-X", "POST", "-H", "Content-Type: application/json", "-d", body, "https://127.0.0.1:\(port)\(route)"]).output
        }
        #expect(await curl("bootstrap", "/v1/store/contribute", json(shardB)) == "{}")
        let response = await curl("nexus", "/v1/store/shard", "{}", headers: true)
        let expected = "{\"shard\":[" + shardB.map(String.init).joined(separator: ",") + "],\"Err\":\"\"}"
        #expect(response.hasSuffix("\r\n\r\n" + expected))
        #expect(response.contains("Content-Type: application/json\r\n"))
        #expect(response.contains("Cache-Control: no-store, no-cache, must-revalidate, private\r\n"))
        #expect(response.contains("Expires: 0\r\n") && response.contains("Pragma: no-cache\r\n"))
        // Go's default route: an empty ?action= is the path's own route; a null body is an empty request.
        #expect(await curl("nexus", "/v1/store/shard?action=", "{}") == expected)
        #expect(await curl("nexus", "/v1/store/shard", "null") == expected)
        #expect(await curl("nexus", "/v1/store/shard?action=get", "{}") == "{\"err\":\"api_bad_request\"}")
        keeper.terminate()  // SIGTERM
        guard await keeperExit.exited(within: .seconds(60)) else {
            kill(keeper.processIdentifier, SIGKILL)
            Issue.record("the keeper did not exit within 60 s of SIGTERM")
            return
        }
        #expect(keeper.terminationStatus == 0)
        let output = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(output.contains("spiffe://spike.ist/spike/nexus POST /v1/store/shard 200"))
        // The log never carries the shard, in any form.
        SecretScan([SecretBytes(copying: shardB)]).check(output, "the keeper's log")
    }
}

@Suite struct PilotShardFileTests {
    @Test func parsesAndRefuses() throws {
        let hex = String(repeating: "aB", count: 32)
        let parsed = try PilotShardFile.parse(Array("spike:7:\(hex)\n".utf8))
        #expect(parsed.id == 7)
        #expect(parsed.value.withUnsafeBytes { Array($0) } == [UInt8](repeating: 0xab, count: 32))
        #expect(throws: PilotShardFile.Problem.notHex) { try PilotShardFile.parse(Array("spike:7:\(String(repeating: "g", count: 64))".utf8)) }
        #expect(throws: PilotShardFile.Problem.zeroShard) { try PilotShardFile.parse(Array("spike:7:\(String(repeating: "0", count: 64))".utf8)) }
        #expect(throws: PilotShardFile.Problem.idOutOfRange(1001)) { try PilotShardFile.parse(Array("spike:1001:\(hex)".utf8)) }
        #expect(throws: PilotShardFile.Problem.badID) { try PilotShardFile.parse(Array("spike:07:\(hex)".utf8)) }
        #expect(SecretBytes.decodingHex(Array("abc".utf8)) == nil)
        #expect(SecretBytes.decodingHex(Array("0fF0".utf8))?.withUnsafeBytes { Array($0) } == [0x0f, 0xf0])
    }
}
