import Foundation
import NIOConcurrencyHelpers
internal import Subprocess

/// What a finished child process left behind.
public struct Finished: Sendable {
    /// The exit code, or the number of the signal that ended the process
    /// (as Foundation's `Process.terminationStatus` gives it).
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

/// Runs a command to completion on swift-subprocess: nothing blocks a thread
/// of the cooperative pool while it waits (two cores give the pool two
/// threads; a blocked one stalls every other test), and both pipes are
/// drained at once so a chatty stderr cannot stall the child. `environment`
/// entries are added to this process's environment. A command still running
/// `timeout` seconds after it started gets SIGTERM (SIGKILL 10 s later if
/// that did not end it); its output so far and that status are returned.
/// Throws when the command cannot be started.
public func runToCompletion(_ executable: String, _ args: [String], environment: [String: String] = [:],
                            timeout: TimeInterval = 30) async throws -> Finished {
    var inherited = Subprocess.Environment.inherit
    if !environment.isEmpty {
        var added: [Subprocess.Environment.Key: String?] = [:]
        for (name, value) in environment {
            // Always succeeds; `Key(rawValue:)` is the one public way to make a key from a variable.
            if let key = Subprocess.Environment.Key(rawValue: name) { added[key] = .some(value) }
        }
        inherited = inherited.updating(added)
    }
    let limit = Duration.seconds(timeout)
    let result = try await Subprocess.run(
        .path(.init(executable)),
        arguments: Arguments(args),
        environment: inherited,
        input: .none,
        output: .sequence,
        error: .sequence
    ) { execution in
        async let out = drain(execution.standardOutput)
        async let err = drain(execution.standardError)
        // Waits for the exit, `limit` at most: the first step's signal 0 only
        // checks that the process is there, then the step waits for it to end.
        // Past `limit` come SIGTERM and, after 10 s, the SIGKILL that ends every
        // teardown sequence. An exit ends the wait at once.
        let steps: [TeardownStep] = [
            .send(signal: Subprocess.Signal(rawValue: 0), allowedDurationToNextStep: limit),
            .gracefulShutDown(allowedDurationToNextStep: .seconds(10)),
        ]
        await execution.teardown(using: steps)
        return Streams(out: try await out, err: try await err)
    }
    let status: Int32
    switch result.terminationStatus {
    case .exited(let code): status = code
    case .signaled(let signal): status = signal
    }
    let streams = result.closureResult
    return Finished(status: status, stdout: String(decoding: streams.out, as: UTF8.self),
                    stderr: String(decoding: streams.err, as: UTF8.self))
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

/// Both output streams of a run, read to their end.
private struct Streams: Sendable {
    let out: [UInt8]
    let err: [UInt8]
}

/// Every byte of one output stream, until the child closes it (or, once the
/// child has exited, what is left in the pipe).
private func drain(_ stream: SubprocessOutputSequence) async throws -> [UInt8] {
    var bytes: [UInt8] = []
    for try await chunk in stream {
        chunk.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }
    return bytes
}

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

/// A fresh directory under this test process's root (`testRoot`).
public func temporaryDirectory(_ prefix: String = "test") throws -> URL {
    let d = URL(fileURLWithPath: testRoot).appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}

/// One directory per test process (`spike-recovery-tests-XXXXXX` under the
/// system's temporary directory), removed when the process exits: fixtures
/// hold development private keys, SVIDs and databases, which must not pile
/// up in /tmp run after run.
let testRoot: String = {
    var template = Array((FileManager.default.temporaryDirectory.path + "/spike-recovery-tests-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { fatalError("cannot create the tests' temporary directory") }
    atexit(removeTestRoot)
    return String(cString: made)
}()

private func removeTestRoot() { try? FileManager.default.removeItem(atPath: testRoot) }
