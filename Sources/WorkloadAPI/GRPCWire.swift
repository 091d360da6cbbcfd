import NIOCore
import NIOHPACK
import SecureMemory

/// gRPC over HTTP/2, as far as a Workload API client and a development
/// server need it (the protocol's own spec, "gRPC over HTTP2"): the request
/// and response headers, the 5-byte message prefix, status codes and the
/// percent-encoded `grpc-message`.
enum GRPCWire {
    static let contentType = "application/grpc"
    /// A message prefix: one compression flag byte, then a 4-byte big-endian length.
    static let prefixBytes = 5
    /// grpc-go's default receive limit, which SPIRE's clients (go-spiffe) run with.
    static let maximumMessageBytes = 4 * 1024 * 1024

    /// The `grpc-status` codes, by their spec names.
    enum StatusCode: Int, Sendable {
        case ok = 0, cancelled, unknown, invalidArgument, deadlineExceeded, notFound, alreadyExists, permissionDenied,
             resourceExhausted, failedPrecondition, aborted, outOfRange, unimplemented, `internal`, unavailable,
             dataLoss, unauthenticated
    }

    /// The headers of a call to `path` (`/package.Service/Method`), plus `metadata`.
    static func requestHeaders(path: String, authority: String, metadata: [(String, String)]) -> HPACKHeaders {
        var headers: HPACKHeaders = [
            ":method": "POST", ":scheme": "http", ":path": path, ":authority": authority,
            "content-type": contentType, "te": "trailers", "user-agent": "spike-recovery",
        ]
        for (name, value) in metadata { headers.add(name: name, value: value) }
        return headers
    }

    /// `message` with its prefix (never compressed).
    static func frame(_ message: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: prefixBytes + message.count)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(message.count))
        buffer.writeBytes(message)
        return buffer
    }

    /// Splits a stream's DATA into messages. Each message body goes
    /// straight into its own wiping buffer of the declared size (no growing
    /// buffer that leaves copies behind); only the 5-byte prefix is staged.
    struct MessageReader {
        enum Failure: Error, Equatable {
            case compressed
            case tooLarge(Int)
        }
        private var prefix: [UInt8] = []
        private var body: SecretBytes?
        private var filled = 0

        /// Whether a message has begun and not yet ended (at end of stream: truncated).
        var isMidMessage: Bool { !prefix.isEmpty || body != nil }

        mutating func consume(_ data: inout ByteBuffer) throws(Failure) -> [SecretBytes] {
            var complete: [SecretBytes] = []
            while data.readableBytes > 0 {
                if let current = body {
                    let n = min(current.count - filled, data.readableBytes)
                    current.withUnsafeMutableBytes { target in
                        _ = data.readWithUnsafeReadableBytes { source in
                            UnsafeMutableRawBufferPointer(rebasing: target[filled..<filled + n]).copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<n]))
                            return n
                        }
                    }
                    filled += n
                } else {
                    let n = min(GRPCWire.prefixBytes - prefix.count, data.readableBytes)
                    prefix += data.readBytes(length: n)!
                    guard prefix.count == GRPCWire.prefixBytes else { continue }
                    guard prefix[0] == 0 else { throw .compressed }
                    let length = prefix[1...].reduce(0) { $0 << 8 | Int($1) }
                    guard length <= GRPCWire.maximumMessageBytes else { throw .tooLarge(length) }
                    prefix = []
                    body = SecretBytes(zeroedCount: length)
                    filled = 0
                }
                if let current = body, filled == current.count {
                    complete.append(current)
                    body = nil
                }
            }
            return complete
        }
    }

    /// `grpc-message` text: bytes outside printable ASCII and `%` are percent-encoded.
    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte >= 0x20, byte <= 0x7e, byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 0xf, radix: 16, uppercase: true)
            }
        }
        return out
    }

    /// The inverse; a malformed escape is kept as written, as the spec asks.
    static func percentDecoded(_ text: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count,
               let high = hexValue(bytes[i + 1]), let low = hexValue(bytes[i + 2]) {
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
