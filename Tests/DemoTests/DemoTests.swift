import BackingStore
import Foundation
import SecureMemory
import Shamir
import Testing
import TestSupport
@testable import Demo

@Suite(.timeLimit(.minutes(2))) struct DemoTests {
    /// The demo's sample store opens under its key with the counts the demo prints, and under no other key.
    @Test func sampleDatabaseOpensUnderItsKeyOnly() throws {
        let dir = try temporaryDirectory("demo")
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = NativeShamir.randomRootKey()
        let path = dir.appendingPathComponent("data/spike.db").path
        let (secrets, versions, policies) = try DemoRun.writeSampleDatabase(path: path, rootKey: key)
        #expect((secrets, versions, policies) == (5, 8, 2))
        let state = try SpikeDatabase.load(path: path, rootKey: key)
        #expect(state.secretCount == secrets && state.versionCount == versions && state.policyCount == policies)
        #expect {
            try SpikeDatabase.load(path: path, rootKey: NativeShamir.randomRootKey())
        } throws: { error in
            if case .tagMismatch = error as? BackingStoreError { true } else { false }
        }
    }

    /// A killed child is awaited without polling, and a waiter after the exit returns at once.
    @Test func childExitResumesEveryWaiter() async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sleep")
        p.arguments = ["30"]
        let exit = ChildExit()
        p.terminationHandler = { _ in exit.markExited() }
        try p.run()
        async let first: Void = exit.wait()
        kill(p.processIdentifier, SIGKILL)  // not SIGTERM: the test process may pass on an ignored disposition
        await first
        await exit.wait()
        #expect(!p.isRunning)
    }

    @Test func setUpErrorsSayWhatFailed() throws {
        let demo = try DemoRun(keepers: 1, threshold: 1, killOne: false, keeperExecutable: "/nonexistent/spike-recovery",
                               colour: false, output: { _ in })
        defer { demo.cleanUp() }
        #expect {
            try demo.startKeeper(index: 1, port: freePort())
        } throws: { error in
            (error as? DemoError)?.description.hasPrefix("demo: cannot start keeper 1 (/nonexistent/spike-recovery): ") == true
        }
        #expect(FileManager.default.fileExists(atPath: demo.dir.path))
        demo.cleanUp()
        #expect(!FileManager.default.fileExists(atPath: demo.dir.path), "clean-up left the directory")
    }

    /// `bench --system`'s exec measure: real keeper and nexus processes, each
    /// run reaching operational with its own `elapsed_ms`, and nothing left behind.
    @Test func execBenchTimesRealNexusProcesses() async throws {
        let binary = BuiltCLI.path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the CLI first: swift build")
        let result = try await ExecBench.run(executable: binary, runs: 2)
        #expect(result.execToOperational.count == 2 && result.elapsed.count == 2)
        for (wall, elapsed) in zip(result.execToOperational, result.elapsed) {
            #expect(wall > 0 && elapsed >= 0 && elapsed <= wall, "exec \(wall) ms, elapsed \(elapsed) ms")
        }
        // Every stage of every run, in order; together they are the run's wall time.
        #expect(result.stages.map(\.0) == ExecBench.stageNames)
        for run in 0..<2 {
            let parts = result.stages.map { $0.1[run] }
            #expect(parts.allSatisfy { $0 >= 0 }, "\(parts)")
            #expect(abs(parts.reduce(0, +) - result.execToOperational[run]) < 0.01, "\(parts) vs \(result.execToOperational[run])")
        }
    }
}
