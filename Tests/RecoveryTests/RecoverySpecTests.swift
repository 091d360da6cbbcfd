import Foundation
import SecureMemory
import Testing
@testable import Recovery

/// Spec/recovery-machine.json, read from the repository.
struct SpecTable {
    struct Transition: Decodable, Hashable { let from: String; let event: String; let to: String; let step: String }
    struct State: Decodable { let name: String }
    struct Step: Decodable, Equatable { let step: String; let event: String }
    struct File: Decodable {
        let initial: String
        let states: [State]
        let transitions: [Transition]
        let expected_traces: [String: [Step]]
    }

    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Spec/recovery-machine.json")

    static func load() throws -> File { try JSONDecoder().decode(File.self, from: Data(contentsOf: url)) }

    /// Whether `trace` is step 1's initial event followed by a path through
    /// the table from the initial state.
    static func validate(_ trace: [(step: String, event: String)], in file: File) -> String? {
        guard let first = trace.first, first.step == "1", first.event == nexusStartedEvent else { return "the trace does not start with step 1" }
        var state = file.initial
        for (i, entry) in trace.enumerated().dropFirst() {
            guard let t = file.transitions.first(where: { $0.from == state && $0.event == entry.event }) else {
                return "entry \(i) (\(entry.event)) is not allowed in state \(state)"
            }
            guard t.step == entry.step else { return "entry \(i) (\(entry.event)) has step \(entry.step), the table says \(t.step)" }
            state = t.to
        }
        return nil
    }
}

@Suite struct RecoverySpecConformanceTests {
    @Test func codeAndSpecHaveTheSameStatesAndTransitions() throws {
        let spec = try SpecTable.load()
        #expect(Set(spec.states.map(\.name)) == Set(RecoveryState.allCases.map(\.rawValue)))
        let code = Set(RecoveryMachine.transitions.map { SpecTable.Transition(from: $0.from.rawValue, event: $0.event.rawValue, to: $0.to.rawValue, step: $0.step) })
        let specSet = Set(spec.transitions)
        #expect(code.subtracting(specSet).isEmpty, "in code only: \(code.subtracting(specSet))")
        #expect(specSet.subtracting(code).isEmpty, "in spec only: \(specSet.subtracting(code))")
        #expect(Set(spec.transitions.map(\.event)) == Set(RecoveryEvent.allCases.map(\.rawValue)))
        #expect(spec.initial == RecoveryState.start.rawValue)
    }

    @Test func expectedTracesArePathsOfTheCodeMachine() throws {
        let spec = try SpecTable.load()
        #expect(spec.expected_traces.count >= 3)
        for (name, steps) in spec.expected_traces {
            var machine = RecoveryMachine()
            #expect(steps.first == SpecTable.Step(step: "1", event: nexusStartedEvent), "\(name) does not start at step 1")
            for s in steps.dropFirst() {
                do {
                    let t = try machine.apply(RecoveryEvent(rawValue: s.event)!)
                    #expect(t.step == s.step, "\(name): \(s.event)")
                } catch {
                    Issue.record("\(name): \(error)")
                    break
                }
            }
            #expect(machine.state.isFinal, "\(name) ends in \(machine.state)")
        }
    }

    @Test func theMachineRefusesMovesOutsideTheTable() {
        var machine = RecoveryMachine()
        #expect(throws: RecoveryViolation.self) { try machine.apply(.rootKeySet) }
        #expect(machine.state == .start)
        #expect(SpecTable.validate([("1", "nexus_started"), ("2", "recovery_begun"), ("8", "root_key_set")], in: try! SpecTable.load()) != nil)
        #expect(SpecTable.validate([("2", "recovery_begun")], in: try! SpecTable.load()) != nil)
    }

    @Test func canonicalSubsetOrder() {
        var c = ShardCollection(threshold: 2)
        for id in [1, 2, 3, 4] { c.append(id: id, value: .init(zeroedCount: 32)) }
        #expect(c.untriedSubsets() == [[1, 2], [1, 3], [2, 3], [1, 4], [2, 4], [3, 4]])
        c.markTried([1, 2])
        #expect(c.firstUntriedSubset() == [1, 3])
        #expect(c.untriedSubsets(limit: 2) == [[1, 3], [2, 3]])
    }

    @Test func roundExhaustionDropsTheShardsOfTriedSubsets() {
        var c = ShardCollection(threshold: 2)
        let values = (1...3).map { _ in SecretBytes(copying: [UInt8](repeating: 7, count: 32)) }
        for (i, v) in values.enumerated() { c.append(id: i + 1, value: v) }
        c.markTried([1, 2])
        let (dropped, zero) = c.dropTried()
        #expect(dropped == [1, 2] && zero)
        #expect(c.ids == [3] && c.tried.isEmpty)
        #expect(values[0].isAllZero && values[1].isAllZero && !values[2].isAllZero)
    }

    /// Every assertion id of the spec is checked in the recovery code, or the
    /// spec says where else it is checked; the code checks no id the spec lacks.
    @Test func everyAssertionIdIsCheckedSomewhere() throws {
        let root = SpecTable.url.deletingLastPathComponent().deletingLastPathComponent()
        let prose = try String(contentsOf: root.appendingPathComponent("Spec/recovery.md"), encoding: .utf8)
        let table = try String(contentsOf: SpecTable.url, encoding: .utf8)
        let id = /\bA(?:R\.\d+|\d+(?:\.(?:\d+|R\d+|D\d+))*)\b/
        func ids(_ text: String) -> Set<String> { Set(text.matches(of: id).map { String($0.output) }) }
        let specIDs = ids(prose).union(ids(table))
        let elsewhereSection = prose.components(separatedBy: "## 9. Assertions checked outside the machine").dropFirst().first ?? ""
        let elsewhere = Set(elsewhereSection.split(separator: "\n").filter { $0.hasPrefix("| A") }.compactMap { line in
            line.firstMatch(of: id).map { String($0.output) }
        })
        var code = Set<String>()
        let sources = root.appendingPathComponent("Sources/Recovery")
        for file in try FileManager.default.contentsOfDirectory(atPath: sources.path) where file.hasSuffix(".swift") {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            // `require(condition, "<step>", "<id>", …)`: the id follows the step literal.
            for m in text.matches(of: /"[0-9R.]+", "(A[0-9R][^"\n]*)"/) { code.insert(String(m.output.1)) }
        }
        #expect(specIDs.count >= 54)
        #expect(specIDs.subtracting(code).subtracting(elsewhere).isEmpty, "in Spec, checked nowhere: \(specIDs.subtracting(code).subtracting(elsewhere).sorted())")
        #expect(code.subtracting(specIDs).isEmpty, "checked in code, missing from Spec: \(code.subtracting(specIDs).sorted())")
        #expect(code.intersection(elsewhere).isEmpty, "listed as checked elsewhere but checked in code: \(code.intersection(elsewhere).sorted())")
    }
}

@Suite struct TraceLineTests {
    @Test func traceLinesAreJSONWithEscapedDetail() throws {
        let entry = TraceEntry(step: "4.4", event: "shard_rejected", milliseconds: 1.5, keeper: 3, detail: "bad \"shard\" <x>\n")
        #expect(entry.jsonLine == #"{"step":"4.4","event":"shard_rejected","t_ms":1.500,"keeper":3,"detail":"bad \"shard\" <x>\n"}"#)
        let parsed = try JSONSerialization.jsonObject(with: Data(entry.jsonLine.utf8)) as? [String: Any]
        #expect(parsed?["detail"] as? String == "bad \"shard\" <x>\n")
        // Always three decimals, rounded, as %.3f would print them.
        for (ms, text) in [(0.0, "0.000"), (0.0004, "0.000"), (0.0006, "0.001"), (0.05, "0.050"), (12.3456, "12.346"), (1999.9996, "2000.000")] {
            #expect(TraceEntry(step: "1", event: "e", milliseconds: ms, keeper: nil, detail: nil).jsonLine == "{\"step\":\"1\",\"event\":\"e\",\"t_ms\":\(text)}")
        }
    }
}
