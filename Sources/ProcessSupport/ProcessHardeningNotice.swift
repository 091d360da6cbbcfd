import Logging
import SecureMemory

extension ProcessHardening {
    /// Applies the hardening and says once, as a notice, what it could not do.
    public static func apply(logger: Logger) {
        if let problem = apply() { logger.notice("\(problem)") }
    }
}
