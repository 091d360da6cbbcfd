import Foundation
import ShamirCore

/// One vector file, in the format of Spec/shamir.md "Vector files" (the format
/// Go SPIKE's vectors use). Every case says what it expects: a split its
/// coefficients and shards, a recovery its root key, a rejection that it
/// fails and, where known, the failure class (`error`).
public struct VectorFile: Codable, Sendable {
    public var note: String?
    public var groupOrder: String
    public var split: [SplitCase]
    public var recover: [RecoverCase]
    public var reject: [RejectCase]

    enum CodingKeys: String, CodingKey {
        case note, split, recover, reject
        case groupOrder = "group_order"
    }

    public init(note: String?, split: [SplitCase] = [], recover: [RecoverCase] = [], reject: [RejectCase] = []) {
        self.note = note
        self.groupOrder = ShamirConstants.groupOrderHex
        self.split = split
        self.recover = recover
        self.reject = reject
    }

    public var caseCount: Int { split.count + recover.count + reject.count }
}

public struct ShardVector: Codable, Sendable, Equatable {
    public var id: UInt64
    public var value: String
    public init(id: UInt64, value: String) {
        self.id = id
        self.value = value
    }
}

public struct SplitCase: Codable, Sendable {
    public var name: String
    public var rootKey: String
    public var threshold: Int
    public var shares: Int
    public var coefficients: [String]
    public var shards: [ShardVector]

    enum CodingKeys: String, CodingKey {
        case name, threshold, shares, coefficients, shards
        case rootKey = "root_key"
    }
}

public struct RecoverCase: Codable, Sendable {
    public var name: String
    public var threshold: Int
    public var shards: [ShardVector]
    public var rootKey: String

    enum CodingKeys: String, CodingKey {
        case name, threshold, shards
        case rootKey = "root_key"
    }
}

public struct RejectCase: Codable, Sendable {
    public enum Operation: String, Codable, Sendable { case split, recover }
    public var name: String
    public var op: Operation
    public var rootKey: String?
    public var threshold: Int
    public var shares: Int?
    public var shards: [ShardVector]?
    public var why: String
    /// The expected failure class (ShamirError.failureClass); absent in files
    /// that only say "this must fail" (Go SPIKE's).
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case name, op, threshold, shares, shards, why, error
        case rootKey = "root_key"
    }
}

/// Why a vector file could not be loaded; names the file and the spot.
public struct VectorLoadError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

public enum VectorLoader {
    /// Reads and decodes one vector file; checks its group order is P-256's.
    public static func load(path: String) throws -> VectorFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw VectorLoadError(path: path, reason: "cannot read file (\(describeIOError(error)))")
        }
        return try decode(data, path: path)
    }

    public static func decode(_ data: Data, path: String) throws -> VectorFile {
        let file: VectorFile
        do {
            file = try JSONDecoder().decode(VectorFile.self, from: data)
        } catch let error as DecodingError {
            throw VectorLoadError(path: path, reason: "not a vector file: \(describe(error))")
        } catch {
            throw VectorLoadError(path: path, reason: "not a vector file")
        }
        guard file.groupOrder.lowercased() == ShamirConstants.groupOrderHex else {
            throw VectorLoadError(path: path, reason: "group_order is not the P-256 order")
        }
        return file
    }

    public static func encode(_ file: VectorFile) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(file)
        data.append(0x0a)
        return data
    }

    static func describe(_ error: DecodingError) -> String {
        func at(_ path: [CodingKey]) -> String {
            path.isEmpty ? "top level" : path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        }
        switch error {
        case .typeMismatch(_, let c): return "wrong type at \(at(c.codingPath))"
        case .valueNotFound(_, let c): return "missing value at \(at(c.codingPath))"
        case .keyNotFound(let key, let c): return "missing key \"\(key.stringValue)\" at \(at(c.codingPath))"
        case .dataCorrupted(let c): return "malformed at \(at(c.codingPath))"
        @unknown default: return "malformed"
        }
    }

    static func describeIOError(_ error: Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSCocoaErrorDomain {
            switch ns.code {
            case NSFileReadNoSuchFileError: return "no such file"
            case NSFileReadNoPermissionError: return "permission denied"
            default: break
            }
        }
        return "read error"
    }
}

/// Hex for vector files: lowercase out, strict in (even length, hex digits only).
public enum Hex {
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        let digits = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(bytes.count * 2)
        for b in bytes {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 0x0f)])
        }
        return s
    }

    /// nil unless the text is an even number of hex digits.
    public static func decode(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
