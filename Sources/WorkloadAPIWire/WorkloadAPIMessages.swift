import SecureMemory

// The X.509 messages of the SPIFFE Workload API (Spec/workload-api/workload.proto),
// decoded and encoded by ProtobufWire. Field numbers are the schema's; each
// type's comment names its message. Fields this code does not know are
// skipped, as protobuf requires; a known field of the wrong wire type, a
// string that is not UTF-8 or a length past the end refuses the message.

/// `X509SVIDRequest` and `X509BundlesRequest`: both empty, so both encode to no bytes.
package enum EmptyRequest {
    package static let encoded: [UInt8] = []
}

/// `X509SVID`: one identity. The key is PKCS#8 DER in wiping storage.
package struct X509SVID: Sendable {
    enum Field {
        static let spiffeID: UInt64 = 1
        static let certificates: UInt64 = 2
        static let key: UInt64 = 3
        static let bundle: UInt64 = 4
        static let hint: UInt64 = 5
    }
    package var spiffeID = ""
    /// `x509_svid`: the leaf and its intermediates, concatenated DER.
    package var x509Svid: [UInt8] = []
    /// `x509_svid_key`: PKCS#8 DER.
    package var x509SvidKey = SecretBytes(zeroedCount: 0)
    /// The SVID's own trust bundle, concatenated DER.
    package var bundle: [UInt8] = []
    package var hint = ""

    package init() {}

    package init(decoding raw: UnsafeRawBufferPointer) throws(ProtobufWire.Malformed) {
        var reader = ProtobufWire.Reader(raw)
        while let (number, type) = try reader.field() {
            switch number {
            case Field.spiffeID: spiffeID = try ProtobufWire.Reader.string(reader.expectLengthDelimited(type, field: number), field: "spiffe_id")
            case Field.certificates: x509Svid = Array(try reader.expectLengthDelimited(type, field: number))
            case Field.key: x509SvidKey = SecretBytes(copying: try reader.expectLengthDelimited(type, field: number))
            case Field.bundle: bundle = Array(try reader.expectLengthDelimited(type, field: number))
            case Field.hint: hint = try ProtobufWire.Reader.string(reader.expectLengthDelimited(type, field: number), field: "hint")
            default: try reader.skip(type)
            }
        }
    }

    /// The encoding holds the key: it goes into wiping storage.
    package func encoded() -> SecretBytes {
        // Each field costs at most a tag byte and a 5-byte length beyond its payload.
        var writer = ProtobufWire.Writer(reservingCapacity: spiffeID.utf8.count + x509Svid.count + x509SvidKey.count + bundle.count + hint.utf8.count + 5 * 6)
        writer.nonEmpty(Field.spiffeID, Array(spiffeID.utf8))
        writer.nonEmpty(Field.certificates, x509Svid)
        x509SvidKey.withUnsafeBytes { writer.nonEmpty(Field.key, $0) }
        writer.nonEmpty(Field.bundle, bundle)
        writer.nonEmpty(Field.hint, Array(hint.utf8))
        var bytes = writer.bytes
        return SecretBytes(consuming: &bytes)
    }
}

/// A `map<string, bytes>` field: each entry is a sub-message (key = 1, value = 2).
enum BundleMapField {
    static func decodeEntry(_ raw: UnsafeRawBufferPointer, into map: inout [String: [UInt8]], field name: String) throws(ProtobufWire.Malformed) {
        var reader = ProtobufWire.Reader(raw)
        var key = "", value: [UInt8] = []
        while let (number, type) = try reader.field() {
            switch number {
            case 1: key = try ProtobufWire.Reader.string(reader.expectLengthDelimited(type, field: number), field: "a \(name) key")
            case 2: value = Array(try reader.expectLengthDelimited(type, field: number))
            default: try reader.skip(type)
            }
        }
        map[key] = value  // a repeated key: the last wins, as protobuf says
    }

    static func encode(_ map: [String: [UInt8]], number: UInt64, into writer: inout ProtobufWire.Writer) {
        for key in map.keys.sorted() {
            var entry = ProtobufWire.Writer()
            entry.nonEmpty(1, Array(key.utf8))
            entry.nonEmpty(2, map[key]!)
            writer.field(number, entry.bytes)
        }
    }
}

/// `X509SVIDResponse`: the SVIDs, revocation lists and federated bundles.
package struct X509SVIDResponse: Sendable {
    enum Field {
        static let svids: UInt64 = 1
        static let crl: UInt64 = 2
        static let federatedBundles: UInt64 = 3
    }
    package var svids: [X509SVID] = []
    package var crl: [[UInt8]] = []
    /// Keyed by trust domain (`spiffe://domain`), concatenated DER.
    package var federatedBundles: [String: [UInt8]] = [:]

    package init() {}

    package init(decoding raw: UnsafeRawBufferPointer) throws(ProtobufWire.Malformed) {
        var reader = ProtobufWire.Reader(raw)
        while let (number, type) = try reader.field() {
            switch number {
            case Field.svids: svids.append(try X509SVID(decoding: reader.expectLengthDelimited(type, field: number)))
            case Field.crl: crl.append(Array(try reader.expectLengthDelimited(type, field: number)))
            case Field.federatedBundles:
                try BundleMapField.decodeEntry(reader.expectLengthDelimited(type, field: number), into: &federatedBundles, field: "federated_bundles")
            default: try reader.skip(type)
            }
        }
    }

    package func encoded() -> SecretBytes {
        let inner = svids.map { $0.encoded() }
        let rest = crl.reduce(0) { $0 + $1.count + 6 } + federatedBundles.reduce(0) { $0 + $1.key.utf8.count + $1.value.count + 18 }
        var writer = ProtobufWire.Writer(reservingCapacity: inner.reduce(rest) { $0 + $1.count + 6 })
        for svid in inner { svid.withUnsafeBytes { writer.field(Field.svids, $0) } }
        for list in crl { writer.field(Field.crl, list) }
        BundleMapField.encode(federatedBundles, number: Field.federatedBundles, into: &writer)
        var bytes = writer.bytes
        return SecretBytes(consuming: &bytes)
    }
}

/// `X509BundlesResponse`: trust bundles only.
package struct X509BundlesResponse: Sendable {
    enum Field {
        static let crl: UInt64 = 1
        static let bundles: UInt64 = 2
    }
    package var crl: [[UInt8]] = []
    package var bundles: [String: [UInt8]] = [:]

    package init() {}

    package init(decoding raw: UnsafeRawBufferPointer) throws(ProtobufWire.Malformed) {
        var reader = ProtobufWire.Reader(raw)
        while let (number, type) = try reader.field() {
            switch number {
            case Field.crl: crl.append(Array(try reader.expectLengthDelimited(type, field: number)))
            case Field.bundles: try BundleMapField.decodeEntry(reader.expectLengthDelimited(type, field: number), into: &bundles, field: "bundles")
            default: try reader.skip(type)
            }
        }
    }

    package func encoded() -> [UInt8] {
        var writer = ProtobufWire.Writer()
        for list in crl { writer.field(Field.crl, list) }
        BundleMapField.encode(bundles, number: Field.bundles, into: &writer)
        return writer.bytes
    }
}
