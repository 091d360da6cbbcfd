import Recovery
import SecureMemory
import SpiffeIdentity
import SpikeWire

/// Nexus's operator routes for SPIKE Pilot (Spec keeper-wire.md, "Operator
/// shards"), byte for byte. Restore shards go into the recovery machine,
/// which answers once each one has been processed; recover serves only once
/// the machine is operational.
public struct OperatorRoutes: Sendable {
    public static let recoverPath = "/v1/operator/recover"
    public static let restorePath = "/v1/operator/restore"

    let recovery: NexusRecovery
    let trustRoots: TrustRoots

    public init(recovery: NexusRecovery, trustRoots: TrustRoots) {
        self.recovery = recovery
        self.trustRoots = trustRoots
    }

    public func handle(method: String, uri: String, body: SecretBytes, peer: SpiffeID) async -> RouteResponse {
        guard method == "POST", !uri.contains("?") else { return notReadyOrBad }
        switch uri {
        case Self.recoverPath: return recover(body: body, peer: peer)
        case Self.restorePath: return await restore(body: body, peer: peer)
        default: return notReadyOrBad
        }
    }

    /// 413 for a body over the server's limit.
    public static let tooLarge = RouteResponse(status: 413, body: Array("{\"err\":\"api_bad_request\"}".utf8))

    static let notReady = RouteResponse(status: 503, body: Array("{\"err\":\"state_not_ready\"}".utf8))

    /// Other routes: 503 until step 12 (this build serves no secrets API).
    var notReadyOrBad: RouteResponse {
        recovery.isOperational ? RouteResponse(status: 400, body: Array("{\"err\":\"api_bad_request\"}".utf8)) : Self.notReady
    }

    func recover(body: SecretBytes, peer: SpiffeID) -> RouteResponse {
        guard trustRoots.id(peer, hasRole: .pilotRecover) else {
            return RouteResponse(status: 401, body: Array("{\"shards\":null,\"err\":\"access_unauthorized\"}".utf8))
        }
        guard (try? KeeperWire.object(body)) != nil else {
            return RouteResponse(status: 400, body: Array("{\"shards\":null,\"err\":\"api_bad_request\"}".utf8))
        }
        // Shards of a key that has not passed step 12 are never handed out.
        guard recovery.isOperational else { return Self.notReady }
        guard let shards = recovery.installedKeyShards() else {
            return RouteResponse(status: 500, body: Array("{\"shards\":null,\"err\":\"api_internal_error\"}".utf8))
        }
        // Reserved whole up front: the array never grows, so no unwiped copy of a shard is left behind.
        var out: [UInt8] = []
        out.reserveCapacity(16 + shards.reduce(0) { $0 + 12 + KeeperWire.arrayCapacity($1.value) })
        out += Array("{\"shards\":{".utf8)
        for (i, shard) in shards.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += Array("\"\(shard.id)\":".utf8)
            KeeperWire.appendArray(shard.value, to: &out)
            shard.value.wipe()
        }
        out += Array("}}".utf8)
        return RouteResponse(status: 200, body: SecretBytes(consuming: &out))
    }

    func restore(body: SecretBytes, peer: SpiffeID) async -> RouteResponse {
        func status(_ code: Int, _ err: String) -> RouteResponse {
            RouteResponse(status: code, body: Array("{\"collected\":0,\"remaining\":0,\"restored\":false,\"err\":\"\(err)\"}".utf8))
        }
        guard trustRoots.id(peer, hasRole: .pilotRestore) else { return status(401, "access_unauthorized") }
        guard let members = try? KeeperWire.object(body),
              let idField = members.first(where: { $0.key == "id" })?.value, case .number(let idText) = idField,
              let id = Int(idText), (1...PilotShardFile.maximumID).contains(id),
              let shard = try? KeeperWire.shard(in: members) else {
            return status(400, "api_bad_request")
        }
        switch await recovery.submitRestore(id: id, shard: shard) {
        case .progress(let collected, let remaining, let restored):
            return RouteResponse(status: 200, body: Array("{\"collected\":\(collected),\"remaining\":\(remaining),\"restored\":\(restored)}".utf8))
        case .badShard:
            return status(400, "api_bad_request")
        case .failed:
            return status(500, "api_internal_error")
        }
    }
}
