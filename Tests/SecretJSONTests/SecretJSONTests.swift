import SecretJSON
import SecureMemory
import Testing

private func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }
private func bytes(_ s: SecretBytes) -> [UInt8] { s.withUnsafeBytes { Array($0) } }

/// The error `JSONReader.parse` throws for these bytes, or nil when they parse.
private func parseError(_ input: [UInt8]) -> JSONError? {
    do throws(JSONError) {
        _ = try JSONReader.parse(input)
        return nil
    } catch {
        return error
    }
}

private func reason(_ text: String) -> String? { parseError(utf8(text))?.reason }

/// The error `JSONReader.stringObject` throws for these bytes, or nil.
private func stringObjectError(_ input: [UInt8]) -> JSONError? {
    do throws(JSONError) {
        _ = try JSONReader.stringObject(SecretBytes(copying: input))
        return nil
    } catch {
        return error
    }
}

// MARK: - Valid documents

@Suite struct JSONReaderValidTests {
    @Test func scalarsAtTheTopLevel() throws {
        #expect(try JSONReader.parse(utf8("true")) == .bool(true))
        #expect(try JSONReader.parse(utf8("false")) == .bool(false))
        #expect(try JSONReader.parse(utf8("null")) == .null)
        #expect(try JSONReader.parse(utf8(#""hi""#)) == .string("hi"))
        #expect(try JSONReader.parse(utf8(" \t\r\n7 \n")) == .number("7"))
    }

    /// Numbers keep their literal text: 1, 1.0 and 1e0 stay distinct.
    @Test func numbersKeepTheirText() throws {
        for literal in ["0", "-0", "1.0", "1e0", "1E+2", "-12.5e-3", "123456789012345678901234567890"] {
            #expect(try JSONReader.parse(utf8(literal)) == .number(literal))
        }
        #expect(try JSONReader.parse(utf8("1")) != JSONReader.parse(utf8("1.0")))
    }

    @Test func objectsKeepOrderAndNesting() throws {
        let value = try JSONReader.parse(utf8(#"{ "z" : {"y":[true,null,"s"]}, "a":"" , "m":{} }"#))
        let members = try #require(value.members)
        #expect(members.map(\.key) == ["z", "a", "m"])
        #expect(members[0].value == .object([(key: "y", value: .array([.bool(true), .null, .string("s")]))]))
        #expect(members[1].value == .string(""))
        #expect(members[2].value == .object([]))
        // Object equality is order-sensitive.
        #expect(try JSONReader.parse(utf8(#"{"a":1,"b":2}"#)) != JSONReader.parse(utf8(#"{"b":2,"a":1}"#)))
        #expect(JSONValue.array([]).members == nil)
        #expect(JSONValue.null.members == nil)
    }

    /// Duplicate keys are kept, in order, so that callers (KeeperWire.object) can refuse them.
    @Test func duplicateKeysAreKeptForTheCaller() throws {
        let members = try #require(try JSONReader.parse(utf8(#"{"k":1,"k":2}"#)).members)
        #expect(members.map(\.key) == ["k", "k"])
        #expect(members.map(\.value) == [.number("1"), .number("2")])
    }

    /// An array of plain integer literals 0…255 becomes a wiping buffer.
    @Test func byteArrays() throws {
        #expect(try JSONReader.parse(utf8("[0,1,255]")) == .bytes(SecretBytes(copying: [0, 1, 255])))
        #expect(try JSONReader.parse(utf8("[ 7 ,\n8\t]")) == .bytes(SecretBytes(copying: [7, 8])))
        guard case .bytes(let b) = try JSONReader.parse(utf8("[9,99,199]")) else {
            Issue.record("expected .bytes")
            return
        }
        #expect(bytes(b) == [9, 99, 199])
        // Not plain bytes: these stay general arrays of numbers, with the literal text.
        #expect(try JSONReader.parse(utf8("[]")) == .array([]))
        #expect(try JSONReader.parse(utf8("[256]")) == .array([.number("256")]))
        #expect(try JSONReader.parse(utf8("[1,2.0]")) == .array([.number("1"), .number("2.0")]))
        #expect(try JSONReader.parse(utf8("[-1]")) == .array([.number("-1")]))
        #expect(try JSONReader.parse(utf8("[1e0]")) == .array([.number("1e0")]))
        #expect(try JSONReader.parse(utf8("[1000]")) == .array([.number("1000")]))
        #expect(try JSONReader.parse(utf8(#"[1,"2"]"#)) == .array([.number("1"), .string("2")]))
        #expect(try JSONReader.parse(utf8("[[1,2]]")) == .array([.bytes(SecretBytes(copying: [1, 2]))]))
        // Bytes and numbers are different values, as are bytes of different content.
        #expect(JSONValue.bytes(SecretBytes(copying: [1])) != .array([.number("1")]))
        #expect(JSONValue.bytes(SecretBytes(copying: [1, 2])) != .bytes(SecretBytes(copying: [1, 3])))
    }

    @Test func stringEscapes() throws {
        let escaped = #""\" \\ \/ \b \f \n \r \t \u00e9 \u65E5 \ud83d\udd11 \u0000""#
        #expect(try JSONReader.parse(utf8(escaped)) == .string("\" \\ / \u{8} \u{c} \n \r \t é 日 🔑 \u{0}"))
        // Raw multi-byte UTF-8 passes through.
        #expect(try JSONReader.parse(utf8(#""ünï 日本語 🔑""#)) == .string("ünï 日本語 🔑"))
        // A DEL (0x7f) is not a control character for JSON.
        #expect(try JSONReader.parse([0x22, 0x7f, 0x22]) == .string("\u{7f}"))
    }

    /// The three entry points read the same bytes the same way.
    @Test func everyOverloadAgrees() throws {
        let input = utf8(#"{"shard":[1,2,3],"Err":""}"#)
        let fromArray = try JSONReader.parse(input)
        let fromSecret = try JSONReader.parse(SecretBytes(copying: input))
        let fromBuffer = try input.withUnsafeBytes { raw in try JSONReader.parse(raw) }
        #expect(fromArray == fromSecret)
        #expect(fromArray == fromBuffer)
        #expect(fromArray.members?.first?.value == .bytes(SecretBytes(copying: [1, 2, 3])))
    }
}

// MARK: - Rejections

@Suite struct JSONReaderRejectionTests {
    @Test func trailingData() {
        let e = parseError(utf8("{} x"))
        #expect(e?.reason == "unexpected data after the value")
        #expect(e?.offset == 3)
        #expect(e?.description == "invalid JSON at byte 3: unexpected data after the value")
        for text in ["{}{}", "[1] [2]", "1 2", "true false", "01", "-01", "0x10", "\"a\"\"b\""] {
            #expect(reason(text) == "unexpected data after the value", "\(text)")
        }
    }

    @Test func emptyAndWhitespaceOnly() {
        #expect(parseError([])?.reason == "unexpected end")
        #expect(parseError([])?.offset == 0)
        #expect(reason(" \n\t\r") == "unexpected end")
        // Only the four JSON whitespace characters count: form feed, NBSP and a BOM do not.
        #expect(reason("\u{0c}{}") == "unexpected character")
        #expect(reason("\u{a0}{}") == "unexpected character")
        #expect(reason("\u{feff}{}") == "unexpected character")
    }

    @Test func badLiteralsAndNumbers() {
        #expect(reason("tru") == "expected true")
        #expect(reason("nul") == "expected null")
        #expect(reason("fals") == "expected false")
        for text in ["True", "NaN", "Infinity", "+1", ".5", "'a'", "undefined"] {
            #expect(reason(text) == "unexpected character", "\(text)")
        }
        #expect(reason("-") == "expected a digit")
        #expect(reason("-Infinity") == "expected a digit")
        #expect(reason("1.") == "expected a digit after '.'")
        #expect(reason("1.e5") == "expected a digit after '.'")
        #expect(reason("1e") == "expected an exponent digit")
        #expect(reason("1e+") == "expected an exponent digit")
    }

    @Test func badStructure() {
        #expect(reason("[1,]") == "unexpected character")
        #expect(parseError(utf8("[1,]"))?.offset == 3)
        #expect(reason("[1 2]") == "expected ',' or ']'")
        #expect(reason("[1") == "expected ',' or ']'")
        #expect(reason("{1:2}") == "expected a key")
        #expect(reason(#"{"a":1,}"#) == "expected a key")
        #expect(reason(#"{"a" 1}"#) == "expected ':'")
        #expect(reason(#"{"a":1 "b":2}"#) == "expected ',' or '}'")
        #expect(reason(#"{"a":1"#) == "expected ',' or '}'")
        #expect(reason(#"{"a":}"#) == "unexpected character")
    }

    @Test func badEscapes() {
        #expect(reason(#""\x""#) == "bad escape")
        #expect(reason(#""\'""#) == "bad escape")
        #expect(reason(#""\U0041""#) == "bad escape")
        #expect(reason(#""\u12G4""#) == "bad \\u escape")
        #expect(reason(#""\u12""#) == "bad \\u escape")  // the closing quote is not a hex digit
        #expect(reason(#""\u12"#) == "short \\u escape")
        #expect(reason(#""abc\"#) == "unterminated escape")
        #expect(reason(#""abc"#) == "unterminated string")
        // UTF-16 surrogates must come as a proper high-low pair.
        #expect(reason(#""\ud800""#) == "lone surrogate")
        #expect(reason(#""\udc00""#) == "lone surrogate")
        #expect(reason(#""\ud800\n""#) == "lone surrogate")
        #expect(reason(#""\ud800\u0041""#) == "bad surrogate pair")
        #expect(reason(#""\ud800\ud800""#) == "bad surrogate pair")
    }

    @Test func controlCharactersInStrings() {
        for c: UInt8 in [0x00, 0x01, 0x09, 0x0a, 0x0d, 0x1f] {
            #expect(parseError([0x22, 0x61, c, 0x22])?.reason == "control character in string", "byte \(c)")
        }
    }

    @Test func invalidUTF8() {
        let cases: [[UInt8]] = [
            [0xff],                    // never valid
            [0xc0, 0xaf],              // overlong "/"
            [0xe0, 0x80, 0xaf],        // overlong, three bytes
            [0xed, 0xa0, 0x80],        // an encoded surrogate
            [0xe2, 0x82],              // truncated sequence
            [0x80],                    // lone continuation byte
            [0xf4, 0x90, 0x80, 0x80],  // above U+10FFFF
        ]
        for bad in cases {
            // In a value, and in a key.
            #expect(parseError([0x22] + bad + [0x22])?.reason == "string is not UTF-8", "\(bad)")
            #expect(parseError([0x7b, 0x22] + bad + [0x22, 0x3a, 0x31, 0x7d])?.reason == "string is not UTF-8", "key \(bad)")
        }
        // Outside a string, a non-ASCII byte is just an unexpected character.
        #expect(parseError([0xff])?.reason == "unexpected character")
    }

    static func nestedArrays(_ depth: Int) -> String { String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }
    /// `depth` objects, the innermost empty.
    static func nestedObjects(_ depth: Int) -> String {
        String(repeating: #"{"a":"#, count: depth - 1) + "{}" + String(repeating: "}", count: depth - 1)
    }

    @Test func depthIsBounded() throws {
        #expect(JSONReader.maximumDepth == 32)
        #expect(parseError(utf8(Self.nestedArrays(32))) == nil)
        #expect(reason(Self.nestedArrays(33)) == "nested too deeply")
        #expect(parseError(utf8(Self.nestedObjects(32))) == nil)
        #expect(reason(Self.nestedObjects(33)) == "nested too deeply")
        // Very deep input is refused at the bound, not by exhausting the stack.
        let e = parseError([UInt8](repeating: UInt8(ascii: "["), count: 100_000))
        #expect(e?.reason == "nested too deeply")
        #expect(e?.offset == 32)
    }

    /// Reasons are fixed phrases: the input (a shard, a secret) is never echoed.
    @Test func reasonsNeverEchoTheInput() {
        let e = parseError(utf8(#"{"k":"marker-in-the-value-\q"}"#))
        #expect(e?.reason == "bad escape")
        #expect(!(e?.description.contains("marker") ?? true))
    }
}

// MARK: - stringObject

@Suite struct StringObjectTests {
    func decoded(_ text: String) throws -> [(key: String, value: [UInt8])] {
        try JSONReader.stringObject(SecretBytes(copying: utf8(text))).map { (key: $0.key, value: bytes($0.value)) }
    }

    @Test func keysAndValuesInOrder() throws {
        let members = try decoded(#" { "user" : "admin", "pass":"val\u0075e", "empty":"" } "#)
        #expect(members.map(\.key) == ["user", "pass", "empty"])
        #expect(members.map(\.value) == [utf8("admin"), utf8("value"), []])
        #expect(try decoded("{}").isEmpty)
    }

    /// Go's HTML-safe escapes and other escapes are decoded into the value bytes.
    @Test func goEscapedValuesDecode() throws {
        let members = try decoded(#"{"html":"\u003cb\u003e\u0026","sep":"\u2028","q":"\"\\\n\t","nul":"a\u0000b","emoji":"\ud83d\udd11"}"#)
        #expect(members.map(\.key) == ["html", "sep", "q", "nul", "emoji"])
        #expect(members[0].value == utf8("<b>&"))
        #expect(members[1].value == [0xe2, 0x80, 0xa8])
        #expect(members[2].value == utf8("\"\\\n\t"))
        #expect(members[3].value == [0x61, 0x00, 0x62])
        #expect(members[4].value == [0xf0, 0x9f, 0x94, 0x91])
        // Keys are decoded too.
        #expect(try decoded(#"{"\u00fc":"x"}"#).map(\.key) == ["ü"])
    }

    @Test func refusals() {
        func why(_ text: String) -> String? { stringObjectError(utf8(text))?.reason }
        #expect(why("") == "expected an object")
        #expect(why("[]") == "expected an object")
        #expect(why(#""x""#) == "expected an object")
        #expect(why("null") == "expected an object")
        #expect(why(#"{"a":1}"#) == "value of a key is not a string")
        #expect(why(#"{"a":null}"#) == "value of a key is not a string")
        #expect(why(#"{"a":{"b":"c"}}"#) == "value of a key is not a string")
        #expect(why(#"{"a":["b"]}"#) == "value of a key is not a string")
        #expect(why(#"{"a":"b"} x"#) == "unexpected data after the value")
        #expect(why(#"{"a":"b"}{}"#) == "unexpected data after the value")
        #expect(why(#"{"a":"b",}"#) == "expected a key")
        #expect(why(#"{a:"b"}"#) == "expected a key")
        #expect(why(#"{"a" "b"}"#) == "expected ':'")
        #expect(why(#"{"a":"b" "c":"d"}"#) == "expected ',' or '}'")
        #expect(why(#"{"a":"b""#) == "expected ',' or '}'")
        #expect(why(#"{"a":"\x"}"#) == "bad escape")
        #expect(why(#"{"a":"\ud800"}"#) == "lone surrogate")
        #expect(stringObjectError([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])?.reason == "string is not UTF-8")
        #expect(stringObjectError([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0x01, 0x22, 0x7d])?.reason == "control character in string")
    }

    /// stringObject reads what JSONText writes in Go's mode (the fixture writer's path).
    @Test func readsJSONTextOutput() throws {
        let pairs: [(String, String)] = [("a<b", "x&y>z"), ("line", "1\n2\u{2028}3"), ("ctl", "\u{1}\u{8}\u{c}\u{1f}"), ("ü", "🔑")]
        let document = "{" + pairs.map { JSONText.quoted($0.0, goHTMLSafe: true) + ":" + JSONText.quoted($0.1, goHTMLSafe: true) }
            .joined(separator: ",") + "}"
        let members = try decoded(document)
        #expect(members.map(\.key) == pairs.map(\.0))
        #expect(members.map(\.value) == pairs.map { utf8($0.1) })
    }
}

// MARK: - JSONText.quoted

@Suite struct JSONTextTests {
    @Test func plainAndRequiredEscapes() {
        #expect(JSONText.quoted("") == #""""#)
        #expect(JSONText.quoted("abc") == #""abc""#)
        #expect(JSONText.quoted("a\"b\\c") == #""a\"b\\c""#)
        #expect(JSONText.quoted("\n\r\t") == #""\n\r\t""#)
        // Other C0 controls as \u00xx with lowercase hex.
        #expect(JSONText.quoted("\u{0}\u{1}\u{1b}\u{1f}") == #""\u0000\u0001\u001b\u001f""#)
        // '/' and DEL are left alone (Go does the same).
        #expect(JSONText.quoted("a/b\u{7f}") == "\"a/b\u{7f}\"")
        // Non-ASCII is written as UTF-8, scalar by scalar (no normalisation).
        #expect(JSONText.quoted("é日本🔑") == "\"é日本🔑\"")
        #expect(JSONText.quoted("e\u{301}").unicodeScalars.map(\.value) == [0x22, 0x65, 0x301, 0x22])
    }

    @Test func htmlCharactersOnlyInGoMode() {
        let text = "<a>&\u{2028}\u{2029}"
        #expect(JSONText.quoted(text) == "\"<a>&\u{2028}\u{2029}\"")
        #expect(JSONText.quoted(text, goHTMLSafe: false) == JSONText.quoted(text))
        #expect(JSONText.quoted(text, goHTMLSafe: true) == #""\u003ca\u003e\u0026\u2028\u2029""#)
    }

    /// Byte-for-byte what Go's json.Marshal writes for these strings.
    @Test func goMarshalKnownAnswers() {
        #expect(JSONText.quoted(#"<a href="x">&</a>"#, goHTMLSafe: true) == #""\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e""#)
        #expect(JSONText.quoted("tab\there\nnew", goHTMLSafe: true) == #""tab\there\nnew""#)
        #expect(JSONText.quoted("\u{0}\u{1f}\u{7f}", goHTMLSafe: true) == "\"\\u0000\\u001f\u{7f}\"")
        #expect(JSONText.quoted("ünï 日本語 🔑", goHTMLSafe: true) == "\"ünï 日本語 🔑\"")
    }

    /// Go 1.22 and later write U+0008 and U+000C as `\b` and `\f` (before:
    /// `\u0008`, `\u000c`); SPIKE is built with a current Go. JSONText still
    /// writes the long forms, so fixtures differ from Go's bytes for these two
    /// characters (readers decode both the same). Fails once fixed: then drop
    /// the wrapper.
    @Test func goWritesShortBackspaceAndFormFeed() {
        withKnownIssue("JSONText.quoted(goHTMLSafe: true) writes \\u0008/\\u000c where Go 1.22+ writes \\b/\\f") {
            #expect(JSONText.quoted("a\u{8}b\u{c}c", goHTMLSafe: true) == #""a\bb\fc""#)
        }
    }

    /// Whatever is written reads back as the same string, in both modes.
    @Test func roundTripsThroughTheReader() throws {
        var controls = ""
        controls.unicodeScalars.append(contentsOf: (0..<0x20).map { Unicode.Scalar(UInt8($0)) })
        let samples = [controls, "\"\\/", "<script>&amp;</script>", "\u{2028}\u{2029}", "ünï 日本語 🔑 e\u{301}", ""]
        for sample in samples {
            for goMode in [false, true] {
                let written = JSONText.quoted(sample, goHTMLSafe: goMode)
                let read = try JSONReader.parse(utf8(written))
                guard case .string(let back) = read else {
                    Issue.record("not read back as a string: \(written)")
                    continue
                }
                // Compare scalars: String == would also accept a canonically equivalent spelling.
                #expect(Array(back.unicodeScalars) == Array(sample.unicodeScalars))
            }
        }
    }
}
