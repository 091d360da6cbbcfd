import Foundation
import GRPCCore
import SpiffeIdentity
import WorkloadAPIProto
import X509

/// Trust bundles only, from the `FetchX509Bundles` stream: for a workload
/// that verifies SVIDs without holding one. Each usable message replaces
/// the whole set; a refused one keeps the previous set.
public final class WorkloadAPIBundleSource: @unchecked Sendable {
    public enum Event: Sendable {
        case updated([String: [Certificate]])
        case refused(String)
        case streamLost(String, retryIn: Duration)
    }

    public let endpoint: WorkloadEndpoint
    private let connection: WorkloadAPIConnection
    private let onEvent: @Sendable (Event) -> Void
    private let lock = NSLock()
    private var bundles: [String: [Certificate]]?
    private var accepted: UInt64 = 0
    private var follower: Task<Void, Never>?

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
                delivered: { self.withLock { $0.accepted } },
                call: {
                    let request = ClientRequest(message: X509BundlesRequest(), metadata: WorkloadAPIConnection.securityHeader)
                    try await connection.api.fetchX509Bundles(request: request, options: WorkloadAPIConnection.streamOptions) { response in
                        for try await message in response.messages { self.accept(message) }
                    }
                },
                lost: { why, retryIn in self.onEvent(.streamLost(why, retryIn: retryIn)) })
        }
        withLock { $0.follower = task }
    }

    /// The newest usable set, keyed by trust domain; nil until one arrives.
    public var current: [String: [Certificate]]? { withLock { $0.bundles } }

    public func close() async {
        let task = withLock { $0.follower }
        task?.cancel()
        await task?.value
        await connection.close()
    }

    private func accept(_ message: X509BundlesResponse) {
        do {
            let next = try Self.bundles(message)
            withLock {
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
        var out: [String: [Certificate]] = [:]
        for (domainID, der) in message.bundles.sorted(by: { $0.key < $1.key }) {
            let what = "bundles[\(domainID)]"
            guard let domain = try? SpiffeID(parsing: domainID), domain.path.isEmpty else {
                throw .badResponse("\(what): the key is not a trust domain's SPIFFE ID (spiffe://domain)")
            }
            do {
                out[domain.trustDomain] = try DERCertificates.parse(Array(der), what: what)
            } catch {
                throw .badResponse(error.description)
            }
        }
        return out
    }

    private func withLock<T>(_ body: (WorkloadAPIBundleSource) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(self)
    }
}
