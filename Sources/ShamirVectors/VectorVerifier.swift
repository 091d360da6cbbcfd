import SecureMemory
import ShamirCore

/// Runs every case of a vector file against one or more implementations.
///
/// A case passes only when every implementation does what it expects. A
/// failure line names the case, the implementation and what differed — which
/// shard, which coefficient — but never prints a value.
public struct VectorVerifier {
    public struct Report: Sendable {
        public var passed = 0
        public var failed = 0
        /// One line per failing case and implementation.
        public var failures: [String] = []

        public init() {}

        public mutating func merge(_ other: Report) {
            passed += other.passed
            failed += other.failed
            failures += other.failures
        }
    }

    public let schemes: [any ShamirScheme]

    public init(schemes: [any ShamirScheme]) {
        precondition(!schemes.isEmpty, "VectorVerifier needs at least one implementation")
        self.schemes = schemes
    }

    public func verify(_ file: VectorFile, label: String) -> Report {
        var report = Report()
        func record(_ kind: String, _ name: String, _ problems: [String]) {
            if problems.isEmpty {
                report.passed += 1
            } else {
                report.failed += 1
                report.failures += problems.map { "\(label): \(kind) \(name): \($0)" }
            }
        }
        for c in file.split { record("split", c.name, schemes.flatMap { s in check(c, s).map { "[\(s.name)] \($0)" } }) }
        for c in file.recover { record("recover", c.name, schemes.flatMap { s in check(c, s).map { "[\(s.name)] \($0)" } }) }
        for c in file.reject { record("reject", c.name, schemes.flatMap { s in check(c, s).map { "[\(s.name)] \($0)" } }) }
        return report
    }

    // MARK: one case

    func check(_ c: SplitCase, _ scheme: any ShamirScheme) -> [String] {
        guard let key = secret(c.rootKey) else { return ["root_key is not hex"] }
        let result: ShamirSplit
        do {
            result = try scheme.split(rootKey: key, threshold: c.threshold, shares: c.shares)
        } catch {
            return ["split failed: \(error)"]
        }
        var problems: [String] = []
        if result.coefficients.count != c.coefficients.count {
            problems.append("expected \(c.coefficients.count) coefficients, got \(result.coefficients.count)")
        } else {
            for (i, (got, want)) in zip(result.coefficients, c.coefficients).enumerated() where !matches(got, want) {
                problems.append("coefficient \(i + 1) differs")
            }
        }
        if result.shards.count != c.shards.count {
            problems.append("expected \(c.shards.count) shards, got \(result.shards.count)")
        } else {
            for (got, want) in zip(result.shards, c.shards) {
                if got.id != want.id {
                    problems.append("shard id \(got.id) where \(want.id) was expected")
                } else if !matches(got.value, want.value) {
                    problems.append("shard \(want.id) differs")
                }
            }
        }
        // Round trips: the first and the last `threshold` shards both give the key back.
        if problems.isEmpty {
            for (label, subset) in [("first", result.shards.prefix(c.threshold)), ("last", result.shards.suffix(c.threshold))] {
                do {
                    let back = try scheme.recover(threshold: c.threshold, shards: Array(subset))
                    if !back.constantTimeEquals(key) { problems.append("recovering from the \(label) \(c.threshold) shards gives another key") }
                } catch {
                    problems.append("recovering from the \(label) \(c.threshold) shards failed: \(error)")
                }
            }
        }
        return problems
    }

    func check(_ c: RecoverCase, _ scheme: any ShamirScheme) -> [String] {
        guard let shards = shards(c.shards) else { return ["a shard value is not hex"] }
        do {
            let key = try scheme.recover(threshold: c.threshold, shards: shards)
            return matches(key, c.rootKey) ? [] : ["recovered another root key"]
        } catch {
            return ["recover failed: \(error)"]
        }
    }

    func check(_ c: RejectCase, _ scheme: any ShamirScheme) -> [String] {
        let outcome: Result<Void, ShamirError>
        switch c.op {
        case .split:
            guard let text = c.rootKey, let key = secret(text) else { return ["root_key is missing or not hex"] }
            outcome = Result { () throws(ShamirError) in
                _ = try scheme.split(rootKey: key, threshold: c.threshold, shares: c.shares ?? c.threshold)
            }
        case .recover:
            guard let given = c.shards, let shards = shards(given) else { return ["shards are missing or not hex"] }
            outcome = Result { () throws(ShamirError) in
                _ = try scheme.recover(threshold: c.threshold, shards: shards)
            }
        }
        switch outcome {
        case .success:
            return ["\(c.op.rawValue) succeeded; expected it to fail (\(c.why))"]
        case .failure(let error):
            if let expected = c.error, expected != error.failureClass {
                return ["failed as \(error.failureClass), expected \(expected)"]
            }
            return []
        }
    }

    // MARK: helpers

    func secret(_ hex: String) -> SecretBytes? {
        guard var bytes = Hex.decode(hex) else { return nil }
        return SecretBytes(consuming: &bytes)
    }

    func shards(_ vectors: [ShardVector]) -> [Shard]? {
        var out: [Shard] = []
        for v in vectors {
            guard let value = secret(v.value) else { return nil }
            out.append(Shard(id: v.id, value: value))
        }
        return out
    }

    func matches(_ got: SecretBytes, _ expectedHex: String) -> Bool {
        guard let expected = Hex.decode(expectedHex) else { return false }
        return got.withUnsafeBytes { $0.elementsEqual(expected) }
    }
}
