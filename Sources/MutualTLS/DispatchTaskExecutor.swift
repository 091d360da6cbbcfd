import Dispatch

/// A task executor on a Dispatch queue of its own. Handshake verification
/// (swift-certificates' verifier is async) and `.async` responders run here,
/// so TLS handshakes and request handling do not wait for whatever CPU-bound
/// work occupies Swift's cooperative thread pool.
final class DispatchTaskExecutor: TaskExecutor, @unchecked Sendable {
    /// Serial: verification is short, and one queue keeps handshakes in arrival order.
    static let verification = DispatchTaskExecutor(label: "spike.mtls.peer-verification", concurrent: false)
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
