import SecureMemory
import SpiffeIdentity
import SpikeWire

/// Nexus's operator routes for SPIKE Pilot (Spec keeper-wire.md, "Operator
/// shards"), byte for byte, with no I/O.
public struct OperatorRoutes: Sendable {
    public struct Response: Sendable, Equatable {
        public let status: Int
        public let body: [UInt8]
    }

    public static let recoverPath = "/v1/operator/recover"
    public static let restorePath = "/v1/operator/restore"

    let restore: OperatorRestore
    let trustRoots: TrustRoots

    public init(restore: OperatorRestore, trustRoots: TrustRoots) {
        self.restore = restore
        self.trustRoots = trustRoots
    }

    public func handle(method: String, uri: String, body: SecretBytes, peer: SpiffeID) async -> Response {
        guard method == "POST", !uri.contains("?") else { return notReadyOrBad }
        switch uri {
        case Self.recoverPath: return recover(body: body, peer: peer)
        case Self.restorePath: return await restore(body: body, peer: peer)
        default: return notReadyOrBad
        }
    }

    /// Other routes: 503 while no key is installed (this build serves no secrets API).
    var notReadyOrBad: Response {
        restore.holder.isSet ? Response(status: 400, body: Array("{\"err\":\"api_bad_request\"}".utf8))
            : Response(status: 503, body: Array("{\"err\":\"state_not_ready\"}".utf8))
    }

    func recover(body: SecretBytes, peer: SpiffeID) -> Response {
        guard trustRoots.id(peer, hasRole: .pilotRecover) else {
            return Response(status: 401, body: Array("{\"shards\":null,\"err\":\"access_unauthorized\"}".utf8))
        }
        guard (try? KeeperWire.object(body)) != nil else {
            return Response(status: 400, body: Array("{\"shards\":null,\"err\":\"api_bad_request\"}".utf8))
        }
        guard let shards = restore.currentShards() else {
            return Response(status: 500, body: Array("{\"shards\":null,\"err\":\"api_internal_error\"}".utf8))
        }
        var out = Array("{\"shards\":{".utf8)
        for (i, shard) in shards.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += Array("\"\(shard.id)\":".utf8)
            var array = KeeperWire.contributeBody(shard.value)  // {"shard":[…]}
            out += array[9..<(array.count - 1)]                  // just the […]
            SecureMemory.wipe(&array)
            shard.value.wipe()
        }
        out += Array("}}".utf8)
        return Response(status: 200, body: out)
    }

    func restore(body: SecretBytes, peer: SpiffeID) async -> Response {
        func status(_ code: Int, _ err: String) -> Response {
            Response(status: code, body: Array("{\"collected\":0,\"remaining\":0,\"restored\":false,\"err\":\"\(err)\"}".utf8))
        }
        guard trustRoots.id(peer, hasRole: .pilotRestore) else { return status(401, "access_unauthorized") }
        guard let members = try? KeeperWire.object(body),
              let idField = members.first(where: { $0.key == "id" })?.value, case .number(let idText) = idField,
              let id = Int(idText), (1...PilotShardFile.maximumID).contains(id),
              let shard = try? KeeperWire.shard(in: members) else {
            return status(400, "api_bad_request")
        }
        do {
            let s = try await restore.add(id: id, shard: shard)
            return Response(status: 200, body: Array("{\"collected\":\(s.collected),\"remaining\":\(s.remaining),\"restored\":\(s.restored)}".utf8))
        } catch .badShard {
            return status(400, "api_bad_request")
        } catch {
            return status(500, "api_internal_error")
        }
    }
}
