import MutualTLS
import NIOCore
import SecureMemory
import SpiffeIdentity
import SpikeWire

/// Talks to keepers: fetch a shard, contribute one.
public protocol KeeperClient: Sendable {
    func fetchShard(url: String, deadline: Duration) async -> KeeperAnswer
    func contribute(url: String, shard: SecretBytes, deadline: Duration) async -> Result<Void, KeeperContributeError>
}

public struct KeeperContributeError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// The production client: mutual TLS, the server must hold a keeper SPIFFE ID,
/// and exactly the pinned one for a URL in `pins` (`SPIKE_NEXUS_KEEPER_IDS`):
/// a keeper at the wrong position fails the handshake before any shard moves.
public struct MTLSKeeperClient: KeeperClient {
    let client: MTLSClient
    let pins: [String: SpiffeID]

    public init(group: EventLoopGroup, source: any X509Source, trustRoots: TrustRoots, pins: [String: SpiffeID] = [:]) {
        client = MTLSClient(group: group, source: source, serverPolicy: .roles([.keeper], trustRoots: trustRoots),
                            maximumResponseBytes: KeeperWire.maximumResponseBytes)
        self.pins = pins
    }

    /// `MTLSClient.startWarmUp`: the TLS context, ready before the first request.
    public func startWarmUp() { client.startWarmUp() }

    public func fetchShard(url: String, deadline: Duration) async -> KeeperAnswer {
        do {
            let response = try await client.post(url, json: Array("{}".utf8), deadline: deadline, expectedPeer: pins[url])
            return KeeperWire.interpretShardResponse(status: response.status, body: response.body)
        } catch MTLSClientError.responseTooLarge(let limit) {
            return .rejected("answer over \(limit) bytes")
        } catch let refused as MTLSClientError where refused.isHandshakeRefusal {
            return .wrongIdentity(refused.description)
        } catch {
            return .unreachable("\(error)")
        }
    }

    public func contribute(url: String, shard: SecretBytes, deadline: Duration) async -> Result<Void, KeeperContributeError> {
        let body = KeeperWire.contributeBody(shard)
        do {
            let response = try await client.post(url, json: body, deadline: deadline, expectedPeer: pins[url])
            guard response.status == 200 else { return .failure(KeeperContributeError(description: "HTTP \(response.status)")) }
            return .success(())
        } catch {
            return .failure(KeeperContributeError(description: "\(error)"))
        }
    }
}
