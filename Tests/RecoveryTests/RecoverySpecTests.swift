import Foundation
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

    /// Whether `trace` is a path through the table from the initial state.
    static func validate(_ trace: [(step: String, event: String)], in file: File) -> String? {
        var state = file.initial
        for (i, entry) in trace.enumerated() {
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
            for s in steps {
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
        #expect(SpecTable.validate([("2", "recovery_begun"), ("8", "root_key_set")], in: try! SpecTable.load()) != nil)
    }

    @Test func canonicalSubsetOrder() {
        var c = ShardCollection(threshold: 2)
        for id in [1, 2, 3, 4] { c.append(id: id, value: .init(zeroedCount: 32)) }
        #expect(c.untriedSubsets() == [[1, 2], [1, 3], [2, 3], [1, 4], [2, 4], [3, 4]])
        c.markTried([1, 2])
        #expect(c.firstUntriedSubset() == [1, 3])
    }
}

@Suite struct TraceLineTests {
    @Test func traceLinesAreJSONWithEscapedDetail() throws {
        let entry = TraceEntry(step: "4.4", event: "shard_rejected", milliseconds: 1.5, keeper: 3, detail: "bad \"shard\" <x>\n")
        #expect(entry.jsonLine == #"{"step":"4.4","event":"shard_rejected","t_ms":1.500,"keeper":3,"detail":"bad \"shard\" <x>\n"}"#)
        let parsed = try JSONSerialization.jsonObject(with: Data(entry.jsonLine.utf8)) as? [String: Any]
        #expect(parsed?["detail"] as? String == "bad \"shard\" <x>\n")
    }
}
