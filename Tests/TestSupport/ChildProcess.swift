import Foundation
import NIOConcurrencyHelpers

/// What a finished child process left behind.
public struct Finished: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs a command to completion with Foundation's Process. The waiting happens
/// on threads of its own, never on the cooperative pool (two cores give the pool two threads; a blocked one
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

/// The exit of a Foundation `Process`, awaited without blocking a thread: its
/// `terminationHandler` wakes the waiters. Create the watch before `run()`
/// where you can; for a process already started, `exited(_:within:)` makes one.
/// An earlier termination handler keeps running. The watch also checks
/// `isRunning` every 100 ms, so an exit that happened before the handler was
/// installed, or that raced with installing it, is seen too.
public final class ExitWatch: Sendable {
    private struct State: Sendable {
        weak var process: Process?
        var ended = false
        var sleepers: [Wakeup] = []
    }
    private let state: NIOLockedValueBox<State>

    public init(_ process: Process) {
        state = NIOLockedValueBox(State(process: process))
        let earlier = process.terminationHandler
        process.terminationHandler = { [self] finished in
            earlier?(finished)
            markEnded()
        }
    }

    /// True once the process (started with `run()`) has exited, waiting up to
    /// `limit`; false if it still runs then, or if the waiting task is cancelled.
    public func exited(within limit: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + limit
        while !hasExited {
            let left = deadline - clock.now
            guard left > .zero, !Task.isCancelled else { return hasExited }
            await nap(min(left, .milliseconds(100)))
        }
        return true
    }

    private var hasExited: Bool {
        state.withLockedValue { $0.ended || !($0.process?.isRunning ?? false) }
    }

    private func markEnded() {
        let woken: [Wakeup] = state.withLockedValue { s in
            s.ended = true
            defer { s.sleepers = [] }
            return s.sleepers
        }
        for w in woken { w.open() }
    }

    /// Sleeps for `length`, or until the termination handler runs.
    private func nap(_ length: Duration) async {
        let wakeup = Wakeup()
        let alreadyEnded = state.withLockedValue { s -> Bool in
            if s.ended { return true }
            s.sleepers.append(wakeup)
            return false
        }
        if alreadyEnded { return }
        let alarm = Task {
            try? await Task.sleep(for: length)
            wakeup.open()
        }
        await wakeup.wait()
        alarm.cancel()
        state.withLockedValue { s in s.sleepers.removeAll { $0 === wakeup } }
    }
}

/// Waits, without blocking a thread, until `process` (already started) has
/// exited or `limit` has passed; true if it exited. Ready for
/// `process.terminationStatus` when true.
public func exited(_ process: Process, within limit: Duration) async -> Bool {
    await ExitWatch(process).exited(within: limit)
}

/// A one-time wake-up: `wait` returns once `open` has been called (before or after).
private final class Wakeup: Sendable {
    private struct State: Sendable {
        var isOpen = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = NIOLockedValueBox(State())

    func open() {
        let resumed: CheckedContinuation<Void, Never>? = state.withLockedValue { s in
            s.isOpen = true
            defer { s.waiter = nil }
            return s.waiter
        }
        resumed?.resume()
    }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLockedValue { s -> Bool in
                if s.isOpen { return true }
                s.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }
}

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
