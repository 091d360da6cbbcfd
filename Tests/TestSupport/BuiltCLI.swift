import Foundation

/// The `spike-recovery` binary the process tests start.
///
/// By default the debug build's (`swift build` / `swift test` make it).
/// `SPIKE_TEST_CLI` names another: CI's sanitizer runs build into the same
/// scratch path, and point here at a copy of the plain debug binary so that
/// the keeper and nexus processes keep their normal speed while the test
/// process itself is instrumented.
public enum BuiltCLI {
    public static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static let path: String = {
        if let chosen = ProcessInfo.processInfo.environment["SPIKE_TEST_CLI"], !chosen.isEmpty { return chosen }
        return repository.appendingPathComponent(".build/debug/spike-recovery").path
    }()
}
