import Glibc
import Logging
import ServiceLifecycle

/// Ends the process with its parent (`SPIKE_RECOVERY_PARENT_PID`, set by the
/// demo), so no keeper outlives a demo that was killed. As a `Service` it
/// returns once the parent is gone; configured to shut the group down then.
public struct ParentProcessWatch: Service {
    public static let variable = "SPIKE_RECOVERY_PARENT_PID"
    let parent: pid_t
    let logger: Logger
    let interval: Duration

    public init(parent: pid_t, logger: Logger, interval: Duration = .milliseconds(200)) {
        self.parent = parent
        self.logger = logger
        self.interval = interval
    }

    public func run() async {
        let parent = self.parent, interval = self.interval
        // A re-parented child sees another parent id: that is the parent's exit.
        let gone = (try? await cancelWhenGracefulShutdown {
            while getppid() == parent { try await Task.sleep(for: interval) }
            return true
        }) ?? false
        if gone { logger.notice("parent process gone: exiting") }
    }
}
