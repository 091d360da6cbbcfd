import Foundation

/// Runs a command to completion on its own thread, never on the cooperative
/// pool (two cores give the pool two threads; a blocked one stalls other tests).
/// Standard output and error are returned together; the command is terminated
/// after `timeout`.
public func run(_ executable: String, _ args: [String], timeout: TimeInterval = 30) async -> (status: Int32, output: String) {
    await withCheckedContinuation { continuation in
        Thread {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = args
            let out = Pipe()
            p.standardOutput = out
            p.standardError = out
            do { try p.run() } catch {
                continuation.resume(returning: (-1, "\(error)"))
                return
            }
            let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            killer.cancel()
            continuation.resume(returning: (p.terminationStatus, String(decoding: data, as: UTF8.self)))
        }.start()
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
