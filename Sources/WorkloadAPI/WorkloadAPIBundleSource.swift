import Foundation
import NIOConcurrencyHelpers
import SecureMemory
import WorkloadAPIWire
import SpiffeIdentity
import X509

/// Trust bundles only, from the `FetchX509Bundles` stream: for a workload
/// that verifies SVIDs without holding one. Each usable message replaces
/// the whole set; a refused one keeps the previous set.
public final class WorkloadAPIBundleSource: Sendable {
    public enum Event: Sendable {
        case updated([String: [Certificate]])
        case refused(String)
        case streamLost(String, retryIn: Duration)
    }

    public let endpoint: WorkloadEndpoint
    private let connection: WorkloadAPIConnection
    private let onEvent: @Sendable (Event) -> Void
    private struct State: Sendable {
        var bundles: [String: [Certificate]]?
        var accepted: UInt64 = 0
        var follower: Task<Void, Never>?
    }
    private let state = NIOLockedValueBox(State())

    public init(endpoint: WorkloadEndpoint, backoff: BackoffPolicy = BackoffPolicy(),
                onEvent: @escaping @Sendable (Event) -> Void = { _ in }) throws(WorkloadAPIError) {
        self.endpoint = endpoint
        self.onEvent = onEvent
        connection = WorkloadAPIConnection(endpoint: endpoint)
        let connection = self.connection
        // The loop holds the source until `close`.
        let task = Task {
            await WorkloadAPIConnection.follow(
                backoff: backoff,
                delivered: { self.state.withLockedValue { $0.accepted } },
                call: { () async throws(WorkloadAPICallError) in
                    try await connection.stream(path: WorkloadAPIConnection.fetchX509Bundles) { self.accept($0) }
                },
                lost: { why, retryIn in self.onEvent(.streamLost(why, retryIn: retryIn)) })
        }
        state.withLockedValue { $0.follower = task }
    }

    /// The newest usable set, keyed by trust domain; nil until one arrives.
    public var current: [String: [Certificate]]? { state.withLockedValue { $0.bundles } }

    public func close() async {
        let task = state.withLockedValue { $0.follower }
        task?.cancel()
        await task?.value
    }

    /// `body` is one encoded `X509BundlesResponse`.
    private func accept(_ body: SecretBytes) {
        do {
            let message = try body.withUnsafeBytes { raw throws(WorkloadAPIError) in
                do { return try X509BundlesResponse(decoding: raw) } catch { throw .badResponse("\(error)") }
            }
            let next = try Self.bundles(message)
            state.withLockedValue {
                $0.bundles = next
                $0.accepted += 1
            }
            onEvent(.updated(next))
        } catch {
            onEvent(.refused("\(error)"))
        }
    }

    static func bundles(_ message: X509BundlesResponse) throws(WorkloadAPIError) -> [String: [Certificate]] {
        guard !message.bundles.isEmpty else { throw .badResponse("no bundles in the response") }
        do {
            return try DERCertificates.bundleMap(message.bundles, field: "bundles")
        } catch {
            throw .badResponse(error.description)
        }
    }
}
