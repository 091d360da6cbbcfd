import SecretJSON
import SecureMemory

/// The Keeper's routes and the exact bytes Go SPIKE puts on the wire
/// (Spec/keeper-wire.md). Bodies have no trailing newline.
public enum KeeperWire {
    public static let contributePath = "/v1/store/contribute"
    public static let shardPath = "/v1/store/shard"
    /// A shard is exactly this many bytes; on the wire, that many integers.
    public static let shardByteCount = 32
    /// Request bodies over this size are refused (Go has no limit). A
    /// contribute body is at most ~140 bytes; 4 KiB leaves room for unknown fields.
    public static let maximumRequestBytes = 4096
    /// What a Nexus accepts back from a keeper (Spec/recovery.md D4: 16 KiB).
    public static let maximumResponseBytes = 16384

    public static let cacheControl = "no-store, no-cache, must-revalidate, private"
    /// The other two no-cache headers a Go keeper sends with every reply.
    public static let expires = "0"
    public static let pragma = "no-cache"

    // Error codes (Go SPIKE's names).
    public static let badRequest = "api_bad_request"
    public static let unauthorized = "access_unauthorized"
    public static let notFound = "api_not_found"

    public static let contributeOK: [UInt8] = Array("{}".utf8)
    public static func errorBody(_ code: String) -> [UInt8] { Array("{\"err\":\"\(code)\"}".utf8) }
    public static func shardErrorBody(_ code: String) -> [UInt8] { Array("{\"shard\":null,\"Err\":\"\(code)\"}".utf8) }

    /// `{"shard":[…32 ints…],"Err":""}`, in wiping storage.
    public static func shardBody(_ shard: SecretBytes) -> SecretBytes {
        var out: [UInt8] = []
        out.reserveCapacity(10 + arrayCapacity(shard) + 10)  // never grows: no unwiped copy
        out += Array("{\"shard\":".utf8)
        appendArray(shard, to: &out)
        out += Array(",\"Err\":\"\"}".utf8)
        return SecretBytes(consuming: &out)
    }

    /// `{"shard":[…32 ints…]}`: the contribute request, in wiping storage.
    public static func contributeBody(_ shard: SecretBytes) -> SecretBytes {
        var out: [UInt8] = []
        out.reserveCapacity(10 + arrayCapacity(shard) + 2)
        out += Array("{\"shard\":".utf8)
        appendArray(shard, to: &out)
        out.append(UInt8(ascii: "}"))
        return SecretBytes(consuming: &out)
    }

    /// The most bytes `appendArray` writes for `bytes`: three digits and a comma each, and the brackets.
    package static func arrayCapacity(_ bytes: SecretBytes) -> Int { bytes.count * 4 + 2 }

    /// `[a,b,…]` in decimal, written digit by digit (no intermediate strings).
    /// The digits come from arithmetic on the secret byte, never a branch or a
    /// table; only each number's digit count is declassified, which Go's
    /// format (no leading zeros) puts in the text's length anyway.
    package static func appendArray(_ bytes: SecretBytes, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        bytes.withUnsafeBytes { raw in
            for i in 0..<raw.count {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                let b = UInt32(raw[i])
                let hundreds = UInt8(truncatingIfNeeded: b / 100), tens = UInt8(truncatingIfNeeded: (b / 10) % 10)
                let ones = UInt8(truncatingIfNeeded: b % 10)
                // For b <= 255: (b + 246) >> 8 is 1 exactly when b >= 10, (b + 156) >> 8 when b >= 100.
                let extra = ((b &+ 246) >> 8) + ((b &+ 156) >> 8)
                let digits = 1 + Int(ConstantTime.declassified(UInt64(extra)))
                if digits == 3 { out.append(0x30 &+ hundreds) }
                if digits >= 2 { out.append(0x30 &+ tens) }
                out.append(0x30 &+ ones)
            }
        }
        out.append(UInt8(ascii: "]"))
    }

    /// Why a shard field was refused (no value is ever echoed).
    public enum ShardFieldProblem: Error, Equatable, Sendable, CustomStringConvertible {
        case notJSON(String), notAnObject, duplicateKey(String), missing, null, notAnArray
        case wrongLength(Int), notByteIntegers, allZero

        public var description: String {
            switch self {
            case .notJSON(let why): "body is not JSON (\(why))"
            case .notAnObject: "body is not a JSON object"
            case .duplicateKey(let k): "key \"\(k)\" appears twice"
            case .missing: "no \"shard\" field"
            case .null: "\"shard\" is null"
            case .notAnArray: "\"shard\" is not an array of integers (base64 or another type)"
            case .wrongLength(let n): "\"shard\" has \(n) elements, expected \(KeeperWire.shardByteCount)"
            case .notByteIntegers: "\"shard\" elements must be integers 0..255"
            case .allZero: "\"shard\" is all zero"
            }
        }
    }

    /// Whether a body is the JSON literal `null` (surrounding whitespace allowed).
    public static func isNull(_ body: SecretBytes) -> Bool {
        if case .null? = try? JSONReader.parse(body) { return true }
        return false
    }

    /// Parses a body that must be a JSON object (any members; duplicate keys refused).
    public static func object(_ body: SecretBytes) throws(ShardFieldProblem) -> [(key: String, value: JSONValue)] {
        let value: JSONValue
        do {
            value = try JSONReader.parse(body)
        } catch {
            throw .notJSON(error.reason)
        }
        guard let members = value.members else { throw .notAnObject }
        var seen = Set<String>()
        for m in members where !seen.insert(m.key).inserted { throw .duplicateKey(m.key) }
        return members
    }

    /// The 32-byte shard held in `key` of an object, strictly: an array of
    /// exactly 32 integers 0…255, not all zero.
    public static func shard(in members: [(key: String, value: JSONValue)], key: String = "shard") throws(ShardFieldProblem) -> SecretBytes {
        guard let field = members.first(where: { $0.key == key })?.value else { throw .missing }
        switch field {
        case .null: throw .null
        case .bytes(let b):
            guard b.count == shardByteCount else { throw .wrongLength(b.count) }
            guard !b.isAllZero else { throw .allZero }
            return b
        case .array(let items):
            // Arrays that are not plain bytes: empty, or holding something else.
            if items.isEmpty { throw .wrongLength(0) }
            throw .notByteIntegers
        default:
            throw .notAnArray
        }
    }

    public static func interpretShardResponse(status: Int, body: SecretBytes) -> KeeperAnswer {
        let members = try? object(body)
        switch status {
        case 200:
            guard let members else { return .rejected("body is not a JSON object") }
            do {
                return .shard(try shard(in: members))
            } catch .missing {
                return .noShard
            } catch .null {
                return .noShard
            } catch .allZero {
                return .noShard
            } catch {
                return .rejected("\(error)")
            }
        case 404:
            return .noShard
        case 400:
            // Go keepers answer a missing shard with 400 {"shard":null,"Err":"api_bad_request"}.
            if let members, let field = members.first(where: { $0.key == "shard" }), field.value == .null { return .noShard }
            return .rejected("bad request")
        default:
            return .rejected("HTTP \(status)")
        }
    }
}

/// What one keeper's answer to `POST /v1/store/shard` means to a Nexus (step 4.4).
public enum KeeperAnswer: Sendable {
    case shard(SecretBytes)
    /// 404, or Go's 400 with a null shard, or a 200 whose shard is null/missing/all zero.
    case noShard
    /// An answer that breaks the wire format (the reason names the rule, never a value).
    case rejected(String)
    /// No answer: connection, TLS or deadline failure.
    case unreachable(String)
    /// No answer, because the TLS handshake refused the keeper's identity (not
    /// a keeper SPIFFE ID, not the one pinned for its position, or not issued
    /// by the trust bundle). Recovery treats it as `unreachable`; the drill names it.
    case wrongIdentity(String)
}
