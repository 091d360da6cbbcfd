import MutualTLS
import NIOCore
import SecureMemory
import SpiffeIdentity
import SpikeWire

/// What one keeper's answer to `POST /v1/store/shard` means (step 4.4).
public enum KeeperAnswer: Sendable {
    case shard(SecretBytes)
    case noShard
    case rejected(String)
    case unreachable(String)
}

/// Talks to keepers: fetch a shard, contribute one.
public protocol KeeperClient: Sendable {
    func fetchShard(url: String, deadline: Duration) async -> KeeperAnswer
    func contribute(url: String, shard: SecretBytes, deadline: Duration) async -> Result<Void, KeeperContributeError>
}

public struct KeeperContributeError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// The production client: mutual TLS, the server must hold a keeper SPIFFE ID.
public struct MTLSKeeperClient: KeeperClient {
    let client: MTLSClient

    public init(group: EventLoopGroup, source: any X509Source, trustRoots: TrustRoots) {
        client = MTLSClient(group: group, source: source, serverPolicy: .roles([.keeper], trustRoots: trustRoots),
                            maximumResponseBytes: KeeperWire.maximumResponseBytes)
    }

    public func fetchShard(url: String, deadline: Duration) async -> KeeperAnswer {
        do {
            let response = try await client.post(url, json: Array("{}".utf8), deadline: deadline)
            switch KeeperWire.interpretShardResponse(status: response.status, body: response.body) {
            case .shard(let s): return .shard(s)
            case .noShard: return .noShard
            case .refused(_, let reason): return .rejected(reason)
            }
        } catch MTLSClientError.responseTooLarge(let limit) {
            return .rejected("answer over \(limit) bytes")
        } catch {
            return .unreachable("\(error)")
        }
    }

    public func contribute(url: String, shard: SecretBytes, deadline: Duration) async -> Result<Void, KeeperContributeError> {
        var body = KeeperWire.contributeBody(shard)
        defer { SecureMemory.wipe(&body) }
        do {
            let response = try await client.post(url, json: body, deadline: deadline)
            guard response.status == 200 else { return .failure(KeeperContributeError(description: "HTTP \(response.status)")) }
            return .success(())
        } catch {
            return .failure(KeeperContributeError(description: "\(error)"))
        }
    }
}
