import Bench
import Testing

/// The benchmark records every measure it promises, each a positive number
/// (it measures; it never asserts a time: timings belong in the README table).
@Suite(.timeLimit(.minutes(10))) struct BenchTests {
    @Test func fieldBenchRecordsEveryMeasureOnce() {
        var recorded: [(String, Double)] = []
        FieldBench.run(.smoke) { recorded.append(($0, $1)) }
        let names = recorded.map(\.0)
        #expect(Set(names).count == names.count, "a measure recorded twice")
        for (native, gmp) in FieldBench.comparisons where !native.contains("1000") {
            #expect(names.contains(native) && names.contains(gmp), "\(native) or \(gmp) missing")
        }
        #expect(names.contains("split_2_of_3_ns") && names.contains("single_inv_ns"))
        #expect(!names.contains("recover_1000_of_2000_ns"))
        #expect(recorded.allSatisfy { $0.1 > 0 && $0.1.isFinite })
    }
}
