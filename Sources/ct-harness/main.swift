// ct-harness: runs the secret-handling code with its secret inputs marked
// undefined for valgrind memcheck, which then reports every branch
// ("Conditional jump or move depends on uninitialised value") and every
// memory index ("Use of uninitialised value") that depends on a secret.
// Driven by tools/ct-check; meaningless outside valgrind.
//
//   ct-harness            the production operations (expect zero findings)
//   ct-harness --leaky    the negative controls: a branch and a table index
//                         on secret data, which memcheck must both catch
import ScalarField
import SecureMemory
import Shamir
import ShamirCore
import SpikeWire
#if canImport(Glibc)
import Glibc
#endif

func secretBytes(_ seed: UInt8) -> SecretBytes {
    let s = SecretBytes(zeroedCount: 32)
    s.withUnsafeMutableBytes { raw in
        for i in 0..<32 { raw[i] = UInt8(truncatingIfNeeded: Int(seed) &* 31 &+ i &* 7) }
        raw[0] &= 0x7f  // below n
    }
    return s
}

/// Decodes a classified (undefined) buffer: the decode itself is under test.
func scalar(_ s: SecretBytes) -> P256Scalar { s.withUnsafeBytes { P256Scalar.decode(bigEndian: $0).value } }

func plain(_ s: SecretBytes) -> PlainScalar { s.withUnsafeBytes { PlainScalar.decode(bigEndian: $0).value } }

func publish(_ s: PlainScalar) -> SecretBytes {
    let out = SecretBytes(zeroedCount: 32)
    out.withUnsafeMutableBytes { s.encode(bigEndian: $0) }
    return out
}

func publish(_ s: P256Scalar) -> SecretBytes {
    let out = SecretBytes(zeroedCount: 32)
    out.withUnsafeMutableBytes { s.encode(bigEndian: $0) }
    return out
}

/// A branch on secret data, as a careless implementation would write it.
@inline(never)
func leakyIsZero(_ s: SecretBytes) -> Bool {
    s.withUnsafeBytes { raw in
        for b in raw where b != 0 { return false }
        return true
    }
}

/// A table lookup indexed by secret data (a cache-timing leak).
@inline(never)
func leakyHexDigit(_ s: SecretBytes, _ table: [UInt8]) -> UInt8 {
    s.withUnsafeBytes { table[Int($0[5] & 0x0f)] }
}

/// A hex decoder by 256-entry table, as many are written (the optimizer may
/// turn a switch into one too): the codec control of the self-test.
let hexTable: [UInt8] = (0...255).map { c -> UInt8 in
    switch c {
    case 0x30...0x39: UInt8(c - 0x30)
    case 0x61...0x66: UInt8(c - 0x61 + 10)
    default: 255
    }
}
@inline(never)
func leakyHexNibble(_ c: UInt8) -> UInt8 { hexTable[Int(c)] }

/// `text` with only its digit characters marked secret: a text's shape (where
/// its separators are) is public, as its length is.
func classifyingDigits(_ text: [UInt8]) -> SecretBytes {
    let s = SecretBytes(copying: text)
    s.withUnsafeMutableBytes { raw in
        for i in 0..<raw.count where raw[i] >= 0x30 && raw[i] <= 0x39 {
            ConstantTime.classify(UnsafeRawBufferPointer(rebasing: raw[i..<(i + 1)]))
        }
    }
    return s
}

let leaky = CommandLine.arguments.contains("--leaky")
let a = secretBytes(1), b = secretBytes(2), key = secretBytes(3)
for s in [a, b, key] { ConstantTime.classify(s) }

if leaky {
    // The negative control: must produce findings.
    if leakyIsZero(a) { print("zero") }
    let digit = leakyHexDigit(b, Array("0123456789abcdef".utf8))
    var hexOfB = b.hexBytes()
    var nibbles: UInt8 = 0
    for c in hexOfB { nibbles |= leakyHexNibble(c) }
    wipe(&hexOfB)
    if nibbles == 255 { print("bad hex") }
    var published = digit
    withUnsafeBytes(of: &published) { _ = $0 }
    print("ct-harness: leaky variant ran (\(digit == 0 ? "" : "done"))")
    exit(0)
}

// Field operations on secret operands: decode, add, sub, neg, mul, square, select, encode.
let x = scalar(a), y = scalar(b)
let sum = x + y, difference = x - y, product = x * y, square = x.squared(), negated = -x
let chosen = P256Scalar.select(P256Scalar.equalMask(x, y), sum, product)
let outputs = [sum, difference, product, square, negated, chosen].map(publish)
_ = x.isZeroMask

// Split of a secret root key (SHA-256 chain, rejection check, Horner, self-check).
let split = try NativeShamir().split(rootKey: key, threshold: 3, shares: 5)

// Recovery's secret part: decode the shard values and combine Σ λ_j·y_j.
let used = Array(split.shards.prefix(3))
for shard in used { ConstantTime.classify(shard.value) }
let weights = P256Scalar.lagrangeWeightsAtZero(ids: used.map(\.id))  // public ids
var values = used.map { plain($0.value) }
let recovered = publish(NativeShamir.combine(weights: weights, values: values))
values.wipeAll()

// Codecs on secrets: hex both ways (Pilot shard files), the decimal JSON
// array both ways (keeper bodies). Digit counts are declassified by design.
var pilot = PilotShardFile.content(id: 1, value: key)
let fromPilot = try PilotShardFile.parse(pilot).value
wipe(&pilot)
let body = KeeperWire.shardBody(key)
var bodyText = body.withUnsafeBytes { Array($0) }
bodyText.withUnsafeBytes { ConstantTime.declassify($0) }  // re-marked below: only the digits are secret
let parsedBody = classifyingDigits(bodyText)
wipe(&bodyText)
let fromJSON = try KeeperWire.shard(in: KeeperWire.object(parsedBody))

// Now reveal the results, so the harness can check it computed the right thing.
for s in [fromPilot, fromJSON] { ConstantTime.declassify(s) }
ConstantTime.declassify(recovered)
ConstantTime.declassify(key)
guard fromPilot.constantTimeEquals(key) && fromJSON.constantTimeEquals(key) else {
    print("ct-harness: a codec round trip differs (the harness itself is broken)")
    exit(2)
}
for o in outputs { ConstantTime.declassify(o) }
guard recovered.constantTimeEquals(key) else {
    print("ct-harness: recovered key differs (the harness itself is broken)")
    exit(2)
}
print("ct-harness: ran field ops, split 3-of-5, recover combine, hex and JSON codecs")
