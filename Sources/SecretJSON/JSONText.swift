/// Writing JSON strings: one escaper for every place that emits JSON by hand
/// (trace lines, the Go-format fixture writer).
public enum JSONText {
    /// `text` as a quoted JSON string. `goHTMLSafe` also escapes `<`, `>`, `&`,
    /// U+2028 and U+2029 as `\u00xx`, as Go's encoding/json does.
    public static func quoted(_ text: String, goHTMLSafe: Bool = false) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<", ">", "&", "\u{2028}", "\u{2029}":
                if goHTMLSafe { out += hexEscape(scalar.value) } else { out.unicodeScalars.append(scalar) }
            default:
                if scalar.value < 0x20 { out += hexEscape(scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    static func hexEscape(_ value: UInt32) -> String {
        let digits = Array("0123456789abcdef")
        return "\\u" + String([digits[Int(value >> 12) & 15], digits[Int(value >> 8) & 15], digits[Int(value >> 4) & 15], digits[Int(value) & 15]])
    }
}
