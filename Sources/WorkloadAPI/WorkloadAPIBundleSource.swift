import Foundation
import GRPCCore
import NIOConcurrencyHelpers
import SpiffeIdentity
import WorkloadAPIProto
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
        connection = try WorkloadAPIConnection(endpoint: endpoint, reconnect: backoff)
        let connection = self.connection
        // The loop holds the source until `close`.
        let task = Task {
            await WorkloadAPIConnection.follow(
                backoff: backoff,
                delivered: { self.state.withLockedValue { $0.accepted } },
                call: {
                    let request = ClientRequest(message: X509BundlesRequest(), metadata: WorkloadAPIConnection.securityHeader)
                    try await connection.api.fetchX509Bundles(request: request, options: WorkloadAPIConnection.streamOptions) { response in
                        for try await message in response.messages { self.accept(message) }
                    }
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
        await connection.close()
    }

    private func accept(_ message: X509BundlesResponse) {
        do {
            let next = try Self.bundles(message)
            state.withLockedValue {
                $0.bundles = next
                $0.accepted += 1
            }
            onEvent(.updated(next))
        } catch {
            onEvent(.refused(error.description))
        }
    }

    static func bundles(_ message: X509BundlesResponse) throws(WorkloadAPIError) -> [String: [Certificate]] {
        guard !message.bundles.isEmpty else { throw .badResponse("no bundles in the response") }
        do {
            return try DERCertificates.bundleMap(message.bundles.mapValues(Array.init), field: "bundles")
        } catch {
            throw .badResponse(error.description)
        }
    }
}
