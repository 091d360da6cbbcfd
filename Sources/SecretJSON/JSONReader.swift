import SecureMemory

/// A strict JSON reader (RFC 8259) for the small bodies of the Keeper and
/// Nexus routes. Numbers keep their literal text, so "1", "1.0" and "1e0" stay
/// distinguishable (a shard element must be a plain integer). Depth is bounded.
///
/// An array made only of plain integer literals 0…255 becomes `.bytes`, held
/// in a wiping `SecretBytes` from the first byte on: shards never pass through
/// ordinary strings or arrays.
public indirect enum JSONValue: Equatable, Sendable {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case bytes(SecretBytes)
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.object(let x), .object(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case (.array(let x), .array(let y)): x == y
        case (.bytes(let x), .bytes(let y)): x.constantTimeEquals(y)
        case (.string(let x), .string(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.bool(let x), .bool(let y)): x == y
        case (.null, .null): true
        default: false
        }
    }

    /// The members of an object, or nil.
    public var members: [(key: String, value: JSONValue)]? {
        if case .object(let m) = self { return m }
        return nil
    }
}

public struct JSONError: Error, Equatable, Sendable, CustomStringConvertible {
    public let offset: Int
    public let reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

public struct JSONReader {
    public static let maximumDepth = 32

    public static func parse(_ secret: SecretBytes) throws(JSONError) -> JSONValue {
        try secret.withUnsafeBytes { raw in Result { () throws(JSONError) in try parse(raw) } }.get()
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(JSONError) -> JSONValue {
        var reader = JSONReader(bytes: bytes)
        reader.skipSpace()
        let value = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.index == bytes.count else { throw reader.error("unexpected data after the value") }
        return value
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        try bytes.withUnsafeBytes { raw in Result { () throws(JSONError) in try parse(raw) } }.get()
    }

    let bytes: UnsafeRawBufferPointer
    var index = 0

    func error(_ reason: String) -> JSONError { JSONError(offset: index, reason: reason) }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d { index += 1 }
    }

    mutating func expect(_ literal: String) throws(JSONError) {
        for c in literal.utf8 {
            guard peek == c else { throw error("expected \(literal)") }
            index += 1
        }
    }

    mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard depth < Self.maximumDepth else { throw error("nested too deeply") }
        guard let c = peek else { throw error("unexpected end") }
        switch c {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw error("unexpected character")
        }
    }

    mutating func object(depth: Int) throws(JSONError) -> JSONValue {
        index += 1
        var members: [(key: String, value: JSONValue)] = []
        skipSpace()
        if peek == UInt8(ascii: "}") { index += 1; return .object(members) }
        while true {
            skipSpace()
            guard peek == UInt8(ascii: "\"") else { throw error("expected a key") }
            let key = try string()
            skipSpace()
            guard peek == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipSpace()
            members.append((key, try value(depth: depth + 1)))
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"): index += 1; return .object(members)
            default: throw error("expected ',' or '}'")
            }
        }
    }

    mutating func array(depth: Int) throws(JSONError) -> JSONValue {
        if let bytes = byteArray() { return .bytes(bytes) }
        index += 1
        var items: [JSONValue] = []
        skipSpace()
        if peek == UInt8(ascii: "]") { index += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"): index += 1; return .array(items)
            default: throw error("expected ',' or ']'")
            }
        }
    }

    /// The fast path for byte arrays: scans `[int, int, …]` with every int a
    /// plain literal 0…255; on success fills a SecretBytes of the exact size
    /// and moves past the array, otherwise leaves the index untouched.
    mutating func byteArray() -> SecretBytes? {
        var i = index + 1
        var count = 0
        // Which bytes are digits is declassified (it is the text's shape: each
        // number's digit count, as its length shows); the digit values are
        // never branched on, and a bad value is found by a mask read once.
        func isDigit(_ c: UInt8) -> Bool {
            let d = Int(c) &- 0x30
            return ConstantTime.declassified(UInt64(truncatingIfNeeded: ~((d | (9 &- d)) >> (Int.bitWidth - 1)) & 1)) == 1
        }
        func space() { while i < bytes.count, !isDigit(bytes[i]), [0x20, 0x09, 0x0a, 0x0d].contains(bytes[i]) { i += 1 } }
        func literal() -> Int? {
            let start = i
            var v = 0
            while i < bytes.count, i - start < 4, isDigit(bytes[i]) {
                v = v &* 10 &+ Int(bytes[i] &- 0x30)
                i += 1
            }
            let length = i - start
            guard length >= 1, length <= 3 else { return nil }
            // Over 255, or a leading zero in a longer number: one mask, read once.
            let over = (255 &- v) >> (Int.bitWidth - 1)
            let first = Int(bytes[start]) &- 0x30
            let leadingZero = length > 1 ? ~((first | (0 &- first)) >> (Int.bitWidth - 1)) : 0
            guard ConstantTime.declassified(UInt64(truncatingIfNeeded: (over | leadingZero) & 1)) == 0 else { return nil }
            // A fraction or exponent makes it a general number (the next byte is not a digit: public).
            if i < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[i]) { return nil }
            return v
        }
        space()
        if i < bytes.count, !isDigit(bytes[i]), bytes[i] == UInt8(ascii: "]") { return nil }  // [] stays a general empty array
        while true {
            space()
            guard literal() != nil else { return nil }
            count += 1
            space()
            guard i < bytes.count, !isDigit(bytes[i]) else { return nil }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { break }
            return nil
        }
        // Second pass: write the values straight into the secret buffer.
        let out = SecretBytes(zeroedCount: count)
        i = index + 1
        out.withUnsafeMutableBytes { raw in
            for k in 0..<count {
                space()
                raw[k] = UInt8(truncatingIfNeeded: literal()!)
                space()
                i += 1  // ',' or ']'
            }
        }
        index = i
        return out
    }

    mutating func number() throws(JSONError) -> String {
        let start = index
        if peek == UInt8(ascii: "-") { index += 1 }
        guard let first = peek, first >= 0x30, first <= 0x39 else { throw error("expected a digit") }
        index += 1
        if first != 0x30 { while let c = peek, c >= 0x30, c <= 0x39 { index += 1 } }
        if peek == UInt8(ascii: ".") {
            index += 1
            guard let c = peek, c >= 0x30, c <= 0x39 else { throw error("expected a digit after '.'") }
            while let c = peek, c >= 0x30, c <= 0x39 { index += 1 }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            guard let c = peek, c >= 0x30, c <= 0x39 else { throw error("expected an exponent digit") }
            while let c = peek, c >= 0x30, c <= 0x39 { index += 1 }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    }

    /// Parses a JSON object whose values are all strings (a SPIKE secret's
    /// key/value data). Values are decoded straight into wiping buffers;
    /// keys become Strings. Anything else is an error.
    public static func stringObject(_ secret: SecretBytes) throws(JSONError) -> [(key: String, value: SecretBytes)] {
        try secret.withUnsafeBytes { raw in
            Result { () throws(JSONError) -> [(key: String, value: SecretBytes)] in
                var reader = JSONReader(bytes: raw)
                reader.skipSpace()
                guard reader.peek == UInt8(ascii: "{") else { throw reader.error("expected an object") }
                reader.index += 1
                var members: [(key: String, value: SecretBytes)] = []
                reader.skipSpace()
                if reader.peek == UInt8(ascii: "}") {
                    reader.index += 1
                } else {
                    while true {
                        reader.skipSpace()
                        guard reader.peek == UInt8(ascii: "\"") else { throw reader.error("expected a key") }
                        let key = try reader.string()
                        reader.skipSpace()
                        guard reader.peek == UInt8(ascii: ":") else { throw reader.error("expected ':'") }
                        reader.index += 1
                        reader.skipSpace()
                        guard reader.peek == UInt8(ascii: "\"") else { throw reader.error("value of a key is not a string") }
                        var value = try reader.rawString()
                        members.append((key, SecretBytes(consuming: &value)))
                        reader.skipSpace()
                        if reader.peek == UInt8(ascii: ",") { reader.index += 1; continue }
                        if reader.peek == UInt8(ascii: "}") { reader.index += 1; break }
                        throw reader.error("expected ',' or '}'")
                    }
                }
                reader.skipSpace()
                guard reader.index == raw.count else { throw reader.error("unexpected data after the value") }
                return members
            }
        }.get()
    }

    mutating func string() throws(JSONError) -> String {
        var out = try rawString()
        defer { wipe(&out) }
        guard let s = String(validating: out, as: UTF8.self) else { throw error("string is not UTF-8") }
        return s
    }

    /// A string's decoded UTF-8 bytes, in one buffer sized up front (no
    /// reallocation leaves copies behind).
    mutating func rawString() throws(JSONError) -> [UInt8] {
        index += 1
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count - index)
        while true {
            guard let c = peek else { throw error("unterminated string") }
            index += 1
            switch c {
            case UInt8(ascii: "\""):
                guard Self.isValidUTF8(out) else { wipe(&out); throw error("string is not UTF-8") }
                return out
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw error("unterminated escape") }
                index += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xd800...0xdbff).contains(scalar) {
                        guard peek == UInt8(ascii: "\\") else { throw error("lone surrogate") }
                        index += 1
                        guard peek == UInt8(ascii: "u") else { throw error("lone surrogate") }
                        index += 1
                        let low = try hex4()
                        guard (0xdc00...0xdfff).contains(low) else { throw error("bad surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                    } else if (0xdc00...0xdfff).contains(scalar) {
                        throw error("lone surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("bad escape") }
                    out += Array(String(Character(u)).utf8)
                default: throw error("bad escape")
                }
            default:
                guard c >= 0x20 else { throw error("control character in string") }
                out.append(c)
            }
        }
    }

    /// UTF-8 validation without building a String (which would copy the bytes).
    static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
        var iterator = bytes.makeIterator()
        var decoder = Unicode.UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let c = peek else { throw error("short \\u escape") }
            index += 1
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            default: throw error("bad \\u escape")
            }
            v = v << 4 | d
        }
        return v
    }
}
