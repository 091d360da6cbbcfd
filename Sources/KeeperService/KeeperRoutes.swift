import SecureMemory
import SpiffeIdentity
import SpikeWire

/// The Keeper's HTTP behaviour, byte for byte (Spec/keeper-wire.md), with no
/// I/O: the server hands it the method, URI, body and verified peer.
public struct KeeperRoutes: Sendable {
    public let slot: ShardSlot
    public let trustRoots: TrustRoots

    public init(slot: ShardSlot, trustRoots: TrustRoots) {
        self.slot = slot
        self.trustRoots = trustRoots
    }

    public static let tooLarge = RouteResponse(status: 413, body: KeeperWire.errorBody(KeeperWire.badRequest))

    public func handle(method: String, uri: String, body: SecretBytes, peer: SpiffeID) -> RouteResponse {
        // POST only, two paths. Go routes on `?action=`: an empty action is the
        // path's own route, any other value (and any other query) is not a Keeper's.
        guard method == "POST", let path = Self.routedPath(uri) else { return badRequest }
        switch String(path) {
        case KeeperWire.contributePath: return contribute(body: body, peer: peer)
        case KeeperWire.shardPath: return shard(body: body, peer: peer)
        default: return badRequest
        }
    }

    /// The path of `uri` when its query, if any, is an empty `action`.
    static func routedPath(_ uri: String) -> Substring? {
        guard let mark = uri.firstIndex(of: "?") else { return uri[...] }
        let query = uri[uri.index(after: mark)...]
        return query == "action=" || query == "action" ? uri[..<mark] : nil
    }

    var badRequest: RouteResponse { RouteResponse(status: 400, body: KeeperWire.errorBody(KeeperWire.badRequest)) }

    func contribute(body: SecretBytes, peer: SpiffeID) -> RouteResponse {
        guard trustRoots.id(peer, hasRole: .nexus) || trustRoots.id(peer, hasRole: .bootstrap) else {
            return RouteResponse(status: 401, body: KeeperWire.errorBody(KeeperWire.unauthorized))
        }
        do {
            let shard = try KeeperWire.shard(in: KeeperWire.object(body))
            slot.store(shard)
            return RouteResponse(status: 200, body: KeeperWire.contributeOK)
        } catch {
            return badRequest
        }
    }

    func shard(body: SecretBytes, peer: SpiffeID) -> RouteResponse {
        guard trustRoots.id(peer, hasRole: .nexus) else {
            return RouteResponse(status: 401, body: KeeperWire.shardErrorBody(KeeperWire.unauthorized))
        }
        // Any JSON object, or the literal null (Go decodes it into an empty request).
        guard KeeperWire.isNull(body) || (try? KeeperWire.object(body)) != nil else {
            return RouteResponse(status: 400, body: KeeperWire.shardErrorBody(KeeperWire.badRequest))
        }
        return slot.withShard { held in
            guard let held else { return RouteResponse(status: 404, body: KeeperWire.shardErrorBody(KeeperWire.notFound)) }
            return RouteResponse(status: 200, body: KeeperWire.shardBody(held))
        }
    }

    /// Why a request was refused, for the log line (never a value).
    public func refusalReason(uri: String, body: SecretBytes) -> String? {
        guard Self.routedPath(uri) == KeeperWire.contributePath[...] else { return nil }
        do {
            _ = try KeeperWire.shard(in: KeeperWire.object(body))
            return nil
        } catch {
            return "\(error)"
        }
    }
}
