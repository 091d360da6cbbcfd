import Foundation

/// What a finished child process left behind.
public struct Finished: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs a command to completion. The waiting happens on threads of its own, never
/// on the cooperative pool (two cores give the pool two threads; a blocked one
/// stalls every other test), and both pipes are drained at once so a chatty
/// stderr cannot stall the child. `environment` entries are added to this
/// process's environment; the command is terminated after `timeout` seconds.
public func runToCompletion(_ executable: String, _ args: [String], environment: [String: String] = [:],
                            timeout: TimeInterval = 30) async throws -> Finished {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    if !environment.isEmpty {
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, added in added }
    }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    return await withCheckedContinuation { continuation in
        Thread {
            let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
            let e = Collected()
            let stderrRead = DispatchSemaphore(value: 0)
            Thread { e.data = err.fileHandleForReading.readDataToEndOfFile(); stderrRead.signal() }.start()
            let o = out.fileHandleForReading.readDataToEndOfFile()
            stderrRead.wait()
            p.waitUntilExit()
            killer.cancel()
            continuation.resume(returning: Finished(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                                                    stderr: String(decoding: e.data, as: UTF8.self)))
        }.start()
    }
}

/// `runToCompletion` for tools whose two streams are read as one (curl, pgrep):
/// the output is stdout then stderr; a command that cannot start gives status -1.
public func run(_ executable: String, _ args: [String], timeout: TimeInterval = 30) async -> (status: Int32, output: String) {
    do {
        let r = try await runToCompletion(executable, args, timeout: timeout)
        return (r.status, r.stdout + r.stderr)
    } catch {
        return (-1, "\(error)")
    }
}

/// Bytes one thread reads and another takes after a semaphore.
private final class Collected: @unchecked Sendable { var data = Data() }

/// Polls `condition` every 20 ms until it holds or `timeout` seconds pass.
public func eventually(_ timeout: TimeInterval = 20, _ condition: () -> Bool) async throws -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// A fresh directory under the system's temporary directory.
public func temporaryDirectory(_ prefix: String = "test") throws -> URL {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}
