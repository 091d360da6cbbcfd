/// Bytes from lowercase or uppercase hex digits (test data only: traps on odd
/// length or a non-hex digit, which is a broken test, not an input to handle).
public func bytes(hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    precondition(digits.count % 2 == 0, "odd-length hex in a test")
    return stride(from: 0, to: digits.count, by: 2).map { i in
        UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16)!
    }
}
