/// The protobuf binary format, as far as the Workload API's X.509 messages
/// need it: varints, tags and length-delimited fields (strings, bytes,
/// sub-messages, map entries). Other wire types are skipped when they carry
/// a field this code does not know, as protobuf requires for forward
/// compatibility; groups (wire types 3 and 4, long deprecated) are refused.
///
/// Hand-written rather than generated so that the private key field is read
/// straight into wiping storage (a generated message keeps it in `Data`).
package enum ProtobufWire {
    enum WireType: UInt8 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case fixed32 = 5
    }

    /// The largest field number protobuf allows (2^29 − 1).
    static let maximumFieldNumber: UInt64 = (1 << 29) - 1
    /// A varint is at most 10 bytes (64 bits, 7 per byte).
    static let maximumVarintBytes = 10

    package struct Malformed: Error, Equatable, CustomStringConvertible {
        package let reason: String
        package init(reason: String) { self.reason = reason }
        package var description: String { "malformed protobuf: \(reason)" }
    }

    /// Reads fields in order from a buffer it does not own.
    ///
    /// Invariant: `offset <= bytes.count`; every slice it returns lies inside `bytes`.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        private(set) var offset = 0

        init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        var isAtEnd: Bool { offset == bytes.count }

        mutating func varint() throws(Malformed) -> UInt64 {
            var value: UInt64 = 0
            for i in 0..<ProtobufWire.maximumVarintBytes {
                guard offset < bytes.count else { throw Malformed(reason: "a varint runs past the end") }
                let byte = bytes[offset]
                offset += 1
                // The tenth byte may only carry the top bit of a 64-bit value.
                if i == ProtobufWire.maximumVarintBytes - 1, byte > 1 { throw Malformed(reason: "a varint is longer than 64 bits") }
                value |= UInt64(byte & 0x7f) << (7 * UInt64(i))
                if byte & 0x80 == 0 { return value }
            }
            throw Malformed(reason: "a varint is longer than 10 bytes")
        }

        /// The next field's number and wire type; nil at the end of the buffer.
        mutating func field() throws(Malformed) -> (number: UInt64, type: WireType)? {
            if isAtEnd { return nil }
            let tag = try varint()
            let number = tag >> 3
            guard number >= 1, number <= ProtobufWire.maximumFieldNumber else {
                throw Malformed(reason: "field number \(number) is out of range")
            }
            guard let type = WireType(rawValue: UInt8(tag & 7)) else {
                throw Malformed(reason: "field \(number) has wire type \(tag & 7), which is not supported")
            }
            return (number, type)
        }

        /// The payload of a length-delimited field.
        mutating func lengthDelimited() throws(Malformed) -> UnsafeRawBufferPointer {
            let length = try varint()
            guard length <= UInt64(bytes.count - offset) else { throw Malformed(reason: "a field's length runs past the end") }
            let start = offset
            offset += Int(length)
            return UnsafeRawBufferPointer(rebasing: bytes[start..<offset])
        }

        /// Skips a field this code does not know.
        mutating func skip(_ type: WireType) throws(Malformed) {
            switch type {
            case .varint: _ = try varint()
            case .lengthDelimited: _ = try lengthDelimited()
            case .fixed64, .fixed32:
                let width = type == .fixed64 ? 8 : 4
                guard width <= bytes.count - offset else { throw Malformed(reason: "a fixed-width field runs past the end") }
                offset += width
            }
        }

        /// A length-delimited field of a known number, refusing any other wire type.
        mutating func expectLengthDelimited(_ type: WireType, field number: UInt64) throws(Malformed) -> UnsafeRawBufferPointer {
            guard type == .lengthDelimited else {
                throw Malformed(reason: "field \(number) has wire type \(type.rawValue), expected 2 (length-delimited)")
            }
            return try lengthDelimited()
        }

        /// A proto3 `string`: must be valid UTF-8.
        static func string(_ raw: UnsafeRawBufferPointer, field name: String) throws(Malformed) -> String {
            guard let text = String(validating: raw, as: UTF8.self) else {
                throw Malformed(reason: "\(name) is not valid UTF-8")
            }
            return text
        }
    }

    /// Appends fields to a byte array.
    struct Writer {
        private(set) var bytes: [UInt8] = []

        /// Reserving the whole size up front means the array never grows by
        /// reallocation, which would leave an unwiped copy of a key behind.
        init(reservingCapacity capacity: Int = 0) { bytes.reserveCapacity(capacity) }

        mutating func varint(_ value: UInt64) {
            var v = value
            while v >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
                v >>= 7
            }
            bytes.append(UInt8(v))
        }

        /// A length-delimited field; proto3 leaves out empty scalar fields, so callers skip those.
        mutating func field(_ number: UInt64, _ payload: some Collection<UInt8>) {
            varint(number << 3 | UInt64(WireType.lengthDelimited.rawValue))
            varint(UInt64(payload.count))
            bytes.append(contentsOf: payload)
        }

        /// Like `field`, but omitted when empty (proto3's default value).
        mutating func nonEmpty(_ number: UInt64, _ payload: some Collection<UInt8>) {
            if !payload.isEmpty { field(number, payload) }
        }
    }
}
