import Logging
import SecureMemory

extension ProcessHardening {
    /// `SPIKE_MEM_LOCK_DISABLED` (spike-sdk-go's name): `true` turns memory
    /// locking off, for containers whose memlock limit cannot be raised.
    public static let memoryLockDisabledVariable = "SPIKE_MEM_LOCK_DISABLED"

    /// Applies the hardening and says once, as a notice, what it could not do
    /// and that memory locking is off when the operator turned it off.
    public static func apply(logger: Logger, lockMemory: Bool = true) {
        if !lockMemory {
            logger.notice("\(memoryLockDisabledVariable)=true: memory is not locked; secrets may reach swap")
        }
        if let problem = apply(lockMemory: lockMemory) { logger.notice("\(problem)") }
    }
}
