import Foundation
import SecureMemory
import Testing

/// Secrets a run must never print, each in the forms a leak would take: hex
/// (both cases), decimal arrays (with and without spaces), base64, and 8- and
/// 16-byte windows of the hex. The one scanner of every test that reads logs.
public struct SecretScan: Sendable {
    public let forms: [String]
    /// Forms per secret (for naming a leak without showing it).
    public static let formsPerSecret = 8

    /// All-zero buffers (wiped ones) are no secret and are left out.
    public init(_ secrets: [SecretBytes]) {
        var forms: [String] = []
        for s in secrets {
            let bytes = s.withUnsafeBytes { Array($0) }
            guard bytes.contains(where: { $0 != 0 }) else { continue }
            let hex = bytes.map { String(format: "%02x", $0) }.joined()
            forms += [hex, hex.uppercased(), bytes.map(String.init).joined(separator: ","),
                      bytes.map(String.init).joined(separator: ", "), Data(bytes).base64EncodedString(),
                      String(hex.prefix(32)), String(hex.suffix(32)), String(hex.prefix(16))]
        }
        self.forms = forms
    }

    /// Records an issue naming the place (never the secret) for each leak;
    /// hex is found in any mix of cases.
    public func check(_ text: String, _ place: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let lower = text.lowercased()
        for (i, form) in forms.enumerated() where text.contains(form) || lower.contains(form) {
            Issue.record("secret \(i / Self.formsPerSecret) leaked into \(place) (form \(i % Self.formsPerSecret))",
                         sourceLocation: sourceLocation)
        }
    }
}
