import SecretJSON
import SecureMemory
import SpikeWire
import Testing

// Known answer from ../shared/spec/shamir.md: rk = 0102…1f20, threshold 2,
// shares 3, shard 1. keeper-wire.md shows the same bytes as decimal integers.
let keeper1Hex = "af236f32fa2a813f8bcb40fbaf87b2f4ded823a83c257443fea67d20d4c431e9"
let keeper1: [UInt8] = [
    175, 35, 111, 50, 250, 42, 129, 63, 139, 203, 64, 251, 175, 135, 178, 244,
    222, 216, 35, 168, 60, 37, 116, 67, 254, 166, 125, 32, 212, 196, 49, 233,
]
let keeper1Decimal = "[175,35,111,50,250,42,129,63,139,203,64,251,175,135,178,244,222,216,35,168,60,37,116,67,254,166,125,32,212,196,49,233]"

private func secret(_ text: String) -> SecretBytes { SecretBytes(copying: Array(text.utf8)) }
private func bytes(_ s: SecretBytes) -> [UInt8] { s.withUnsafeBytes { Array($0) } }
private func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }
private func text(_ b: SecretBytes) -> String { b.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }
/// A JSON array of the given integers, no spaces (as Go writes it).
private func jsonArray(_ values: [Int]) -> String { "[" + values.map { String($0) }.joined(separator: ",") + "]" }

// MARK: - Constants and fixed bodies

@Suite struct KeeperWireConstantsTests {
    @Test func routesAndLimits() {
        #expect(KeeperWire.contributePath == "/v1/store/contribute")
        #expect(KeeperWire.shardPath == "/v1/store/shard")
        #expect(KeeperWire.shardByteCount == 32)
        #expect(KeeperWire.maximumRequestBytes == 4096)
        // Spec/recovery.md D6: an answer over 16 KiB is rejected.
        #expect(KeeperWire.maximumResponseBytes == 16 * 1024)
        // A full contribute body must fit in the request bound with room to spare.
        let largest = KeeperWire.contributeBody(SecretBytes(copying: [UInt8](repeating: 255, count: 32)))
        #expect(largest.count < KeeperWire.maximumRequestBytes)
        #expect(KeeperWire.cacheControl == "no-store, no-cache, must-revalidate, private")
        #expect(KeeperWire.expires == "0" && KeeperWire.pragma == "no-cache")
    }

    @Test func errorBodiesAreGoBytes() {
        #expect(KeeperWire.badRequest == "api_bad_request")
        #expect(KeeperWire.unauthorized == "access_unauthorized")
        #expect(KeeperWire.notFound == "api_not_found")
        #expect(text(KeeperWire.contributeOK) == "{}")
        #expect(text(KeeperWire.errorBody(KeeperWire.badRequest)) == #"{"err":"api_bad_request"}"#)
        #expect(text(KeeperWire.errorBody(KeeperWire.unauthorized)) == #"{"err":"access_unauthorized"}"#)
        // The shard route's errors use Go's capitalised "Err" next to a null shard.
        #expect(text(KeeperWire.shardErrorBody(KeeperWire.notFound)) == #"{"shard":null,"Err":"api_not_found"}"#)
        #expect(text(KeeperWire.shardErrorBody(KeeperWire.unauthorized)) == #"{"shard":null,"Err":"access_unauthorized"}"#)
        #expect(text(KeeperWire.shardErrorBody(KeeperWire.badRequest)) == #"{"shard":null,"Err":"api_bad_request"}"#)
    }
}

// MARK: - Bodies written

@Suite struct KeeperWireBodyTests {
    @Test func contributeBodyMatchesTheSpecExample() {
        let body = KeeperWire.contributeBody(SecretBytes(copying: keeper1))
        #expect(text(body) == #"{"shard":"# + keeper1Decimal + "}")
        #expect(text(body).last == "}")  // no trailing newline
    }

    @Test func shardBodyCarriesAnEmptyErr() {
        let body = KeeperWire.shardBody(SecretBytes(copying: keeper1))
        #expect(text(body) == #"{"shard":"# + keeper1Decimal + #","Err":""}"#)
    }

    /// Decimal rendering at every digit-count boundary, no leading zeros.
    @Test func everyDigitBoundary() {
        var value = [UInt8](repeating: 1, count: 32)
        let edges: [UInt8] = [0, 9, 10, 99, 100, 199, 200, 255]
        for (i, b) in edges.enumerated() { value[i] = b }
        let body = text(KeeperWire.contributeBody(SecretBytes(copying: value)))
        #expect(body == #"{"shard":["# + "0,9,10,99,100,199,200,255" + String(repeating: ",1", count: 24) + "]}")
    }

    /// What we write, we read back as the same 32 bytes.
    @Test func bodiesRoundTrip() throws {
        let value = SecretBytes(copying: (0..<32).map { UInt8($0 * 8) })
        for body in [KeeperWire.contributeBody(value), KeeperWire.shardBody(value)] {
            let members = try KeeperWire.object(body)
            let shard = try KeeperWire.shard(in: members)
            #expect(shard.constantTimeEquals(value))
        }
    }
}

// MARK: - Bodies read

@Suite struct KeeperWireParsingTests {
    /// The problem a body gets when a shard is read from it, or nil when it is accepted.
    func problem(_ body: String, key: String = "shard") -> KeeperWire.ShardFieldProblem? {
        do throws(KeeperWire.ShardFieldProblem) {
            let members = try KeeperWire.object(secret(body))
            _ = try KeeperWire.shard(in: members, key: key)
            return nil
        } catch {
            return error
        }
    }

    func isNotJSON(_ p: KeeperWire.ShardFieldProblem?) -> Bool {
        if case .notJSON = p { return true }
        return false
    }

    @Test func objectKeepsMembersInOrder() throws {
        let members = try KeeperWire.object(secret(#"{"b":"x","a":1,"c":null,"d":[true]}"#))
        #expect(members.map(\.key) == ["b", "a", "c", "d"])
        #expect(members[0].value == .string("x"))
        #expect(members[1].value == .number("1"))
        #expect(members[2].value == .null)
        #expect(members[3].value == .array([.bool(true)]))
        #expect(try KeeperWire.object(secret("{}")).isEmpty)
        #expect(try KeeperWire.object(secret(" \n{ }\t")).isEmpty)
    }

    @Test func objectRefusals() {
        #expect(throws: KeeperWire.ShardFieldProblem.notAnObject) { _ = try KeeperWire.object(secret("[]")) }
        #expect(throws: KeeperWire.ShardFieldProblem.notAnObject) { _ = try KeeperWire.object(secret("null")) }
        #expect(throws: KeeperWire.ShardFieldProblem.notAnObject) { _ = try KeeperWire.object(secret(#""shard""#)) }
        // Duplicate keys are refused, also when they differ only in escaping.
        #expect(throws: KeeperWire.ShardFieldProblem.duplicateKey("shard")) {
            _ = try KeeperWire.object(secret(#"{"shard":null,"shard":null}"#))
        }
        #expect(throws: KeeperWire.ShardFieldProblem.duplicateKey("a")) { _ = try KeeperWire.object(secret(#"{"a":1,"\u0061":2}"#)) }
        for broken in ["", "{", #"{"shard":}"#, "{} {}", "{}x", #"{'shard':1}"#, "{\"a\":1,}"] {
            #expect(isNotJSON(problem(broken)), "\(broken) should be notJSON")
        }
    }

    @Test func acceptsTheShardWithSpacesAndUnknownFields() throws {
        let spaced = "{ \"extra\" : {\"x\":[1,2]} ,\n \"shard\" : [ " + keeper1.map { String($0) }.joined(separator: " , ") + " ] }"
        let members = try KeeperWire.object(secret(spaced))
        #expect(try bytes(KeeperWire.shard(in: members)) == keeper1)
        #expect(problem(spaced) == nil)
    }

    @Test func shardFieldRefusals() {
        let ok = keeper1.map { Int($0) }
        #expect(problem("{}") == .missing)
        // Keys match exactly: Go's case-insensitive match is not copied.
        #expect(problem(#"{"Shard":"# + keeper1Decimal + "}") == .missing)
        #expect(problem(#"{"shard":null}"#) == .null)
        // Base64 (what a naive encoder would write) and other types.
        #expect(problem(#"{"shard":"ryNvMvoqgT+Ly0D7r4ey9N7YI6g8JXRD/qZ9INTEMek="}"#) == .notAnArray)
        #expect(problem(#"{"shard":{}}"#) == .notAnArray)
        #expect(problem(#"{"shard":7}"#) == .notAnArray)
        #expect(problem(#"{"shard":true}"#) == .notAnArray)
        // Length must be exactly 32 (Go would zero-fill short arrays and drop extras).
        #expect(problem(#"{"shard":[]}"#) == .wrongLength(0))
        #expect(problem(#"{"shard":"# + jsonArray(Array(ok.prefix(31))) + "}") == .wrongLength(31))
        #expect(problem(#"{"shard":"# + jsonArray(ok + [1]) + "}") == .wrongLength(33))
        // Elements must be plain integers 0…255.
        for bad in ["256", "-1", "1.0", "1e0", "1E2", "\"1\"", "null", "true", "[1]", "1000"] {
            let body = #"{"shard":["# + bad + "," + ok.dropFirst().map { String($0) }.joined(separator: ",") + "]}"
            #expect(problem(body) == .notByteIntegers, "element \(bad)")
        }
        // A leading zero is not JSON at all.
        #expect(isNotJSON(problem(#"{"shard":["# + "01," + ok.dropFirst().map { String($0) }.joined(separator: ",") + "]}")))
        #expect(problem(#"{"shard":"# + jsonArray([Int](repeating: 0, count: 32)) + "}") == .allZero)
    }

    @Test func otherKeyName() {
        let body = #"{"value":"# + keeper1Decimal + "}"
        #expect(problem(body) == .missing)
        #expect(problem(body, key: "value") == nil)
    }

    @Test func problemsNeverEchoTheBody() {
        let body = #"{"shard":"# + jsonArray(keeper1.prefix(31).map { Int($0) }) + "}"
        let p = problem(body)
        #expect(p == .wrongLength(31))
        #expect(p?.description == #""shard" has 31 elements, expected 32"#)
        #expect(!(p?.description.contains("175") ?? true))
    }
}

// MARK: - interpretShardResponse

@Suite struct ShardResponseTests {
    /// KeeperAnswer is not Equatable (it holds a buffer); compare through this.
    enum Answer: Equatable {
        case shard([UInt8]), noShard, rejected(String), unreachable(String)
    }

    func answer(_ status: Int, _ body: String) -> Answer {
        switch KeeperWire.interpretShardResponse(status: status, body: secret(body)) {
        case .shard(let s): .shard(bytes(s))
        case .noShard: .noShard
        case .rejected(let reason): .rejected(reason)
        case .unreachable(let why), .wrongIdentity(let why): .unreachable(why)
        }
    }

    @Test func okWithAShard() {
        #expect(answer(200, text(KeeperWire.shardBody(SecretBytes(copying: keeper1)))) == .shard(keeper1))
        // Without the Err key (a Go keeper always sends it, but it is not required).
        #expect(answer(200, #"{"shard":"# + keeper1Decimal + "}") == .shard(keeper1))
    }

    /// Spec/recovery.md 4.4 / D7: every spelling of "no shard yet".
    @Test func noShardSpellings() {
        #expect(answer(404, text(KeeperWire.shardErrorBody(KeeperWire.notFound))) == .noShard)
        #expect(answer(404, "not even JSON") == .noShard)
        #expect(answer(400, #"{"shard":null,"Err":"api_bad_request"}"#) == .noShard)
        #expect(answer(200, #"{"shard":null,"Err":""}"#) == .noShard)
        #expect(answer(200, "{}") == .noShard)
        #expect(answer(200, #"{"shard":"# + jsonArray([Int](repeating: 0, count: 32)) + #","Err":""}"#) == .noShard)
    }

    @Test func refusals() {
        #expect(answer(200, "") == .rejected("body is not a JSON object"))
        #expect(answer(200, "[]") == .rejected("body is not a JSON object"))
        #expect(answer(200, #"{"shard":"# + jsonArray(keeper1.prefix(31).map { Int($0) }) + "}")
                == .rejected(#""shard" has 31 elements, expected 32"#))
        #expect(answer(200, #"{"shard":"ryNvMvoqgT+Ly0D7r4ey9N7YI6g8JXRD/qZ9INTEMek="}"#)
                == .rejected(#""shard" is not an array of integers (base64 or another type)"#))
        // A 400 that is not Go's "no shard" answer, and any other status, even with a shard in it.
        #expect(answer(400, #"{"err":"api_bad_request"}"#) == .rejected("bad request"))
        #expect(answer(400, "garbage") == .rejected("bad request"))
        let withShard = text(KeeperWire.shardBody(SecretBytes(copying: keeper1)))
        #expect(answer(401, withShard) == .rejected("HTTP 401"))
        #expect(answer(500, withShard) == .rejected("HTTP 500"))
        #expect(answer(201, withShard) == .rejected("HTTP 201"))
    }

    @Test func duplicateShardKeysAreNotAShard() {
        let body = #"{"shard":"# + keeper1Decimal + #","shard":null}"#
        guard case .rejected(_) = answer(200, body) else {
            Issue.record("a body with two shard keys must be refused")
            return
        }
    }
}

// MARK: - Pilot shard files

@Suite struct PilotShardFileTests {
    func file(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func namesAndLimits() {
        #expect(PilotShardFile.prefix == "spike:")
        #expect(PilotShardFile.maximumID == 1000)
        #expect(PilotShardFile.fileName(id: 1) == "spike.recovery.1.txt")
        #expect(PilotShardFile.fileName(id: 1000) == "spike.recovery.1000.txt")
    }

    /// `spike:<id>:<64 lowercase hex>`, no newline; file i equals keeper i's shard.
    @Test func contentIsPilotsFormat() {
        let content = PilotShardFile.content(id: 1, value: SecretBytes(copying: keeper1))
        #expect(content == file("spike:1:" + keeper1Hex))
        #expect(content.count == 8 + 64)
        #expect(content.last != 0x0a)
        let pattern = SecretBytes(copying: [UInt8](repeating: 0xab, count: 32))
        #expect(PilotShardFile.content(id: 1000, value: pattern) == file("spike:1000:" + String(repeating: "ab", count: 32)))
    }

    @Test func parseKnownAnswer() throws {
        let parsed = try PilotShardFile.parse(file("spike:1:" + keeper1Hex))
        #expect(parsed.id == 1)
        #expect(bytes(parsed.value) == keeper1)
    }

    @Test func roundTripAtIDBoundaries() throws {
        let value = SecretBytes(copying: (0..<32).map { UInt8(255 - $0) })
        for id in [1, 9, 10, 99, 100, 999, 1000] {
            let parsed = try PilotShardFile.parse(PilotShardFile.content(id: id, value: value))
            #expect(parsed.id == id)
            #expect(parsed.value.constantTimeEquals(value))
        }
    }

    @Test func toleratedVariants() throws {
        // One trailing newline (LF or CRLF), as an editor might add.
        #expect(try bytes(PilotShardFile.parse(file("spike:2:" + keeper1Hex + "\n")).value) == keeper1)
        #expect(try bytes(PilotShardFile.parse(file("spike:2:" + keeper1Hex + "\r\n")).value) == keeper1)
        // Upper-case hex decodes to the same bytes.
        #expect(try bytes(PilotShardFile.parse(file("spike:2:" + keeper1Hex.uppercased())).value) == keeper1)
    }

    @Test func refusalsAndTheirOrder() {
        let hex = keeper1Hex
        func parse(_ text: String) throws(PilotShardFile.Problem) { _ = try PilotShardFile.parse(file(text)) }
        // Length first: reported with the full byte count.
        #expect(throws: PilotShardFile.Problem.tooLong(100)) { try parse(String(repeating: "x", count: 100)) }
        #expect(throws: PilotShardFile.Problem.tooLong(76)) { try parse("spike:1:" + hex + "0000") }
        // Prefix.
        #expect(throws: PilotShardFile.Problem.noPrefix) { try parse("") }
        #expect(throws: PilotShardFile.Problem.noPrefix) { try parse("SPIKE:1:" + hex) }
        #expect(throws: PilotShardFile.Problem.noPrefix) { try parse(" spike:1:" + hex) }
        #expect(throws: PilotShardFile.Problem.noPrefix) { try parse("spik") }
        // The id: 1–4 decimal digits, no sign, no leading zero, then a colon.
        for badID in ["", "01", "0001", "-1", "+1", "1a", " 1", "x"] {
            #expect(throws: PilotShardFile.Problem.badID, "id \(badID)") { try parse("spike:" + badID + ":" + hex) }
        }
        // Five digits (with a short hex part, so the length check passes first).
        #expect(throws: PilotShardFile.Problem.badID) { try parse("spike:12345:" + String(hex.dropLast())) }
        #expect(throws: PilotShardFile.Problem.badID) { try parse("spike:" + hex) }  // no second colon
        #expect(throws: PilotShardFile.Problem.idOutOfRange(0)) { try parse("spike:0:" + hex) }
        #expect(throws: PilotShardFile.Problem.idOutOfRange(1001)) { try parse("spike:1001:" + hex) }
        #expect(throws: PilotShardFile.Problem.idOutOfRange(9999)) { try parse("spike:9999:" + hex) }
        // The hex part.
        #expect(throws: PilotShardFile.Problem.badHexLength(0)) { try parse("spike:1:") }
        #expect(throws: PilotShardFile.Problem.badHexLength(63)) { try parse("spike:1:" + String(hex.dropLast())) }
        #expect(throws: PilotShardFile.Problem.badHexLength(65)) { try parse("spike:1:" + hex + "0") }
        // Only one newline is tolerated; a second leaves a newline in the hex.
        #expect(throws: PilotShardFile.Problem.badHexLength(65)) { try parse("spike:1:" + hex + "\n\n") }
        #expect(throws: PilotShardFile.Problem.notHex) { try parse("spike:1:" + String(hex.dropLast()) + "g") }
        #expect(throws: PilotShardFile.Problem.notHex) { try parse("spike:1:" + String(hex.dropFirst()) + " ") }
        #expect(throws: PilotShardFile.Problem.notHex) { try parse("spike:1:0x" + String(hex.dropFirst(2))) }
        #expect(throws: PilotShardFile.Problem.zeroShard) { try parse("spike:1:" + String(repeating: "0", count: 64)) }
    }

    @Test func problemsNeverEchoTheContent() {
        let content = "spike:3:" + String(keeper1Hex.dropLast()) + "z"
        do throws(PilotShardFile.Problem) {
            _ = try PilotShardFile.parse(file(content))
            Issue.record("a non-hex shard was accepted")
        } catch {
            #expect(error == .notHex)
            #expect(!"\(error)".contains("af236f"))
            #expect(error.description == "shard is not hex")
        }
        #expect(PilotShardFile.Problem.tooLong(80).description == "file is 80 bytes; a shard file is 75 at most")
        #expect(PilotShardFile.Problem.idOutOfRange(0).description == "shard id 0 is outside 1...1000")
    }
}
