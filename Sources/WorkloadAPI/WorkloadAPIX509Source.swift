import Foundation
import NIOConcurrencyHelpers
import SecureMemory
import WorkloadAPIWire
import ServiceLifecycle
import SpiffeIdentity

/// SVIDs from the SPIFFE Workload API (a SPIRE agent): follows the
/// `FetchX509SVID` stream, and each usable message replaces SVID and bundles
/// at once, so the next TLS handshake presents the new SVID.
///
/// Invariant: once `start` has returned, `current` is the newest usable
/// SVID received (generation 1, 2, …). A refused message, a lost stream or a
/// server restart never removes it; TLS stops presenting it when it expires
/// (MutualTLS checks `notAfter`).
///
/// The stream is followed from `start` on, since the first SVID gates
/// start-up; as a `Service` the source owns that follower's lifetime and
/// closes it at graceful shutdown.
public final class WorkloadAPIX509Source: X509Source, Service, Sendable {
    public struct Options: Sendable {
        public var selector: SVIDSelector = .first
        /// How long `start` waits for the first usable SVID.
        public var startupWait: Duration = .seconds(30)
        public var backoff = BackoffPolicy()
        public init() {}
    }

    public enum Event: Sendable {
        /// A new SVID is current.
        case updated(X509Snapshot)
        /// A message could not be used; the previous SVID stays.
        case refused(String)
        /// The stream ended or failed; it is reopened after `retryIn`.
        case streamLost(String, retryIn: Duration)
        /// The current SVID has expired and no newer one has arrived.
        case expired(X509Snapshot)
    }

    public let endpoint: WorkloadEndpoint
    private let options: Options
    private let onEvent: @Sendable (Event) -> Void
    private let connection: WorkloadAPIConnection
    private struct State: Sendable {
        var snapshot: X509Snapshot?
        var accepted: UInt64 = 0
        var lastProblem = "no response yet"
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        var follower: Task<Void, Never>?
    }
    private let state = NIOLockedValueBox(State())

    /// Connects and waits (up to `options.startupWait`) for the first usable SVID.
    public static func start(endpoint: WorkloadEndpoint, options: Options = Options(),
                             onEvent: @escaping @Sendable (Event) -> Void = { _ in }) async throws(WorkloadAPIError) -> WorkloadAPIX509Source {
        let source = try WorkloadAPIX509Source(endpoint: endpoint, options: options, onEvent: onEvent)
        source.follow()
        if await source.firstSVID(within: options.startupWait) { return source }
        let problem = source.state.withLockedValue { $0.lastProblem }
        await source.close()
        throw .noSVID(endpoint: endpoint.address, waited: options.startupWait, lastProblem: problem)
    }

    private init(endpoint: WorkloadEndpoint, options: Options, onEvent: @escaping @Sendable (Event) -> Void) throws(WorkloadAPIError) {
        self.endpoint = endpoint
        self.options = options
        self.onEvent = onEvent
        connection = WorkloadAPIConnection(endpoint: endpoint)
    }

    public var current: X509Snapshot {
        state.withLockedValue { $0.snapshot! }  // set before `start` returns, never cleared
    }

    /// Follows the stream until graceful shutdown or cancellation, then closes.
    public func run() async {
        try? await gracefulShutdown()
        await close()
    }

    /// Stops following the stream and closes the connection; `current` stays readable.
    public func close() async {
        let task = state.withLockedValue { $0.follower }
        task?.cancel()
        await task?.value
    }

    /// The loop holds the source until `close` (a source lives as long as its process).
    private func follow() {
        let task = Task { [connection, options] in
            await WorkloadAPIConnection.follow(
                backoff: options.backoff,
                delivered: { self.state.withLockedValue { $0.accepted } },
                call: { () async throws(WorkloadAPICallError) in
                    try await connection.stream(path: WorkloadAPIConnection.fetchX509SVID) { self.accept($0) }
                },
                lost: { why, retryIn in self.streamLost(why, retryIn: retryIn) })
        }
        state.withLockedValue { $0.follower = task }
    }

    /// `body` is one encoded `X509SVIDResponse`; its buffer and the decoded key are wiped after use.
    private func accept(_ body: SecretBytes) {
        let message: X509SVIDResponse
        do {
            message = try body.withUnsafeBytes { try X509SVIDResponse(decoding: $0) }
        } catch {
            refuse(WorkloadAPIError.badResponse("\(error)").description)
            return
        }
        defer { X509Response.wipeKeys(message) }
        let generation = state.withLockedValue { ($0.snapshot?.generation ?? 0) + 1 }
        do {
            let next = try X509Response.snapshot(message, selecting: options.selector, generation: generation)
            let woken: [CheckedContinuation<Void, Never>] = state.withLockedValue { s in
                s.snapshot = next
                s.accepted += 1
                defer { s.waiters = [:] }
                return Array(s.waiters.values)
            }
            woken.forEach { $0.resume() }
            onEvent(.updated(next))
        } catch {
            refuse(error.description)
        }
    }

    private func refuse(_ why: String) {
        state.withLockedValue { $0.lastProblem = why }
        onEvent(.refused(why))
    }

    private func streamLost(_ why: String, retryIn: Duration) {
        let expired: X509Snapshot? = state.withLockedValue {
            $0.lastProblem = why
            guard let s = $0.snapshot, s.notAfter <= Date() else { return nil }
            return s
        }
        onEvent(.streamLost(why, retryIn: retryIn))
        if let expired { onEvent(.expired(expired)) }
    }

    /// True once an SVID is current; false if `wait` passed first.
    private func firstSVID(within wait: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.firstSVIDArrived(); return !Task.isCancelled }
            group.addTask { try? await Task.sleep(for: wait); return false }
            let result = await group.next() ?? false
            group.cancelAll()
            return result || state.withLockedValue { $0.snapshot != nil }
        }
    }

    private func firstSVIDArrived() async {
        let id = state.withLockedValue { s -> Int in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLockedValue { s -> Bool in
                    if s.snapshot != nil || Task.isCancelled { return true }
                    s.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLockedValue { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}
