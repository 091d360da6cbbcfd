import Foundation
import SecureMemory
import Testing
import TestSupport

/// Process-level hygiene of the secret-holding commands: no core dump, no
/// backtrace or register dump on a crash, memory locked, and one notice
/// when hardening is incomplete.
@Suite(.serialized, .timeLimit(.minutes(5))) struct SecretsHygieneTests {
    /// A keeper holding a shard, started through bash so the test can set limits.
    struct Keeper {
        let dir: URL
        let process = Process()
        /// The process's exit, watched from before it started.
        let exitWatch: ExitWatch
        let port = freePort()
        let shard: [UInt8] = (0..<32).map { UInt8(($0 * 53 + 7) % 251 + 1) }
        var log: String { (try? String(contentsOfFile: dir.appendingPathComponent("keeper.log").path, encoding: .utf8)) ?? "" }

        init(limits: String = "ulimit -c unlimited", wrapper: String = "") async throws {
            dir = try temporaryDirectory()
            #expect(try await cli(["certs", "issue", "--out", dir.path, "--keepers", "1"], env: [:]).status == 0)
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            // The working directory is where a core file would land (core_pattern "core").
            process.arguments = ["-c", "cd '\(dir.path)' && \(limits) && exec \(wrapper) '\(binary)' keeper"]
            var env = ProcessInfo.processInfo.environment
            env["SPIKE_SVID_CERT_FILE"] = dir.appendingPathComponent("keeper-1.pem").path
            env["SPIKE_SVID_KEY_FILE"] = dir.appendingPathComponent("keeper-1.key").path
            env["SPIKE_SVID_BUNDLE_FILE"] = dir.appendingPathComponent("bundle.pem").path
            env["SPIKE_KEEPER_TLS_PORT"] = "127.0.0.1:\(port)"
            process.environment = env
            _ = FileManager.default.createFile(atPath: dir.appendingPathComponent("keeper.log").path, contents: nil)
            let handle = try FileHandle(forWritingTo: dir.appendingPathComponent("keeper.log"))
            process.standardError = handle
            process.standardOutput = handle
            exitWatch = ExitWatch(process)
            try process.run()
            let port = self.port
            #expect(try await eventually { portOpen(port) }, "keeper did not start")
            let body = "{\"shard\":[\(shard.map(String.init).joined(separator: ","))]}"
            let answer = await run("/usr/bin/curl", ["-s", "-k", "--max-time", "5", "--cert", dir.appendingPathComponent("nexus.pem").path,
                                                     "--key", dir.appendingPathComponent("nexus.key").path, "-X", "POST", "-d", body,
                                                     "https://127.0.0.1:\(port)/v1/store/contribute"])
            #expect(answer.output == "{}")
        }

        func status(_ field: String) -> Int? {
            let text = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return nil }
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }

        func coreFiles() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasPrefix("core") }
        }
    }

    /// Whether this machine writes a core file for an ordinary crashing
    /// process in its working directory (the control for the test below).
    static func coresAreWritten() async throws -> Bool {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // abort() unblocks SIGABRT itself (a test thread's children inherit a blocked signal mask).
        _ = await run("/bin/bash", ["-c", "cd '\(dir.path)' && ulimit -c unlimited && exec python3 -c 'import os; os.abort()'"])
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).contains { $0.hasPrefix("core") }
    }

    /// The scan the suites run over their output finds each form of a secret.
    @Test func theScanFindsEveryForm() {
        var bytes: [UInt8] = (0..<32).map { UInt8($0 * 7 + 3) }
        let secret = SecretBytes(consuming: &bytes)
        let scan = SecretScan([secret])
        for form in scan.forms {
            withKnownIssue { scan.check("log line: " + form + " end", "sample") }
        }
        scan.check("nothing here", "sample")
    }

    @Test(arguments: [SIGABRT, SIGSEGV, SIGQUIT])
    func aCrashLeavesNoCoreAndNoSecret(signal: Int32) async throws {
        let control = try await Self.coresAreWritten()
        let k = try await Keeper()
        defer { try? FileManager.default.removeItem(at: k.dir) }
        kill(k.process.processIdentifier, signal)
        let died = try await eventually(10) { !k.process.isRunning }
        #expect(died, "the keeper did not die of signal \(signal)")
        if !died { kill(k.process.processIdentifier, SIGKILL) }
        guard await k.exitWatch.exited(within: .seconds(30)) else {
            Issue.record("the keeper did not exit, even after SIGKILL")
            return
        }
        #expect(k.process.terminationReason == .uncaughtSignal && k.process.terminationStatus == signal)
        #expect(k.coreFiles().isEmpty, "core file written")
        let log = k.log
        #expect(log.contains("spike-recovery: fatal signal \(signal) (no backtrace and no core dump: this process holds secrets)"))
        #expect(!log.contains("Backtracing") && !log.contains("rip 0x"), "runtime backtrace with registers printed")
        SecretScan([SecretBytes(copying: k.shard)]).check(log, "crash output")
        if !control { Issue.record(Comment(rawValue: "note: this machine writes no core files even for ordinary processes; the no-core check proved nothing here")) }
    }

    @Test func memoryIsLockedAndNoNoticeWhenHardeningSucceeds() async throws {
        try #require(getuid() == 0, "mlockall needs root or a 1 GiB RLIMIT_MEMLOCK")
        let k = try await Keeper()
        defer {
            // The test awaits the exit; this covers a throw before that or a keeper still running (a `defer` cannot await).
            if k.process.isRunning { kill(k.process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: k.dir)
        }
        #expect((k.status("VmLck") ?? 0) > 0, "no memory locked")
        k.process.terminate()  // notices are flushed at the latest on exit
        #expect(try await eventually(30) { !k.process.isRunning })
        #expect(!k.log.contains("memory hardening incomplete"))
    }

    /// `SPIKE_MEM_LOCK_DISABLED=true` (containers whose memlock limit cannot
    /// be raised): nothing is locked, and one notice says so; the rest of the
    /// hardening still applies (no core dumps).
    @Test func memoryLockingCanBeTurnedOff() async throws {
        let k = try await Keeper(limits: "export SPIKE_MEM_LOCK_DISABLED=true")
        defer {
            if k.process.isRunning { kill(k.process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: k.dir)
        }
        #expect(k.status("VmLck") == 0)
        k.process.terminate()
        #expect(try await eventually(30) { !k.process.isRunning })
        let notices = k.log.components(separatedBy: "SPIKE_MEM_LOCK_DISABLED=true: memory is not locked").count - 1
        #expect(notices == 1, "\(k.log)")
        #expect(!k.log.contains("memory hardening incomplete"), "\(k.log)")
    }

    /// Without CAP_IPC_LOCK and with a small RLIMIT_MEMLOCK, mlockall fails:
    /// the keeper still runs, says so exactly once, and locks nothing.
    @Test func incompleteHardeningIsSaidOnce() async throws {
        let setpriv = "/usr/bin/setpriv"
        try #require(getuid() == 0 && FileManager.default.isExecutableFile(atPath: setpriv), "needs root and setpriv to drop CAP_IPC_LOCK")
        let k = try await Keeper(limits: "ulimit -l 64", wrapper: "\(setpriv) --bounding-set=-ipc_lock")
        defer {
            // The test awaits the exit; this covers a throw before that or a keeper still running (a `defer` cannot await).
            if k.process.isRunning { kill(k.process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: k.dir)
        }
        #expect(k.status("VmLck") == 0)
        k.process.terminate()  // notices are flushed at the latest on exit
        #expect(try await eventually(30) { !k.process.isRunning })
        let notices = k.log.components(separatedBy: "memory hardening incomplete: mlockall").count - 1
        #expect(notices == 1, "\(k.log)")
    }
}
