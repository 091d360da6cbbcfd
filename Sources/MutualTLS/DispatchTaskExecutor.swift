import Dispatch
import Synchronization

/// A task executor on a Dispatch queue of its own. Handshake verification
/// (swift-certificates' verifier is async) and `.async` responders run here,
/// so TLS handshakes and request handling do not wait for whatever CPU-bound
/// work occupies Swift's cooperative thread pool.
final class DispatchTaskExecutor: TaskExecutor, @unchecked Sendable {
    /// Where peer checks (and the start-up warm-ups) run: one of two serial
    /// queues, taken in turn. A serial queue gets a thread of its own from
    /// Dispatch, not one of the cooperative pool's, so a busy pool cannot
    /// stall a handshake; with two, a nexus checks two keepers' chains at
    /// once, and a warm-up running on one holds up nothing on the other.
    static var verification: DispatchTaskExecutor {
        verificationQueues[turn.add(1, ordering: .relaxed).oldValue & 1]
    }
    static let verificationQueues = (0..<2).map { DispatchTaskExecutor(label: "spike.mtls.peer-verification.\($0)", concurrent: false) }
    private static let turn = Atomic<Int>(0)
    /// Concurrent: a responder may wait on I/O (the Nexus's restore route).
    static let responders = DispatchTaskExecutor(label: "spike.mtls.responders", concurrent: true)

    private let queue: DispatchQueue

    init(label: String, concurrent: Bool) {
        queue = DispatchQueue(label: label, attributes: concurrent ? .concurrent : [])
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
