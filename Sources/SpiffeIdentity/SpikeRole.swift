/// The SPIKE components, each identified by a SPIFFE ID path under one or
/// more trust roots: an ID has a role when it is `spiffe://<root><path>` or
/// lies below it, for one of the role's roots.
public enum SpikeRole: String, CaseIterable, Sendable {
    case nexus, keeper, bootstrap
    case pilotSuperuser = "pilot-superuser"
    case pilotRecover = "pilot-recover"
    case pilotRestore = "pilot-restore"

    /// The role's path below the trust root.
    public var path: String {
        switch self {
        case .nexus: "/spike/nexus"
        case .keeper: "/spike/keeper"
        case .bootstrap: "/spike/bootstrap"
        case .pilotSuperuser: "/spike/pilot/role/superuser"
        case .pilotRecover: "/spike/pilot/role/recover"
        case .pilotRestore: "/spike/pilot/role/restore"
        }
    }

    /// The environment variable that lists this role's trust roots.
    public var trustRootVariable: String {
        switch self {
        case .nexus: "SPIKE_TRUST_ROOT_NEXUS"
        case .keeper: "SPIKE_TRUST_ROOT_KEEPER"
        case .bootstrap: "SPIKE_TRUST_ROOT_BOOTSTRAP"
        case .pilotSuperuser, .pilotRecover, .pilotRestore: "SPIKE_TRUST_ROOT_PILOT"
        }
    }
}

/// The trust roots of every role (from `SPIKE_TRUST_ROOT_*`, default `spike.ist`).
///
/// Invariant: every role has at least one root, each a valid trust domain.
public struct TrustRoots: Sendable, Equatable {
    public static let defaultRoot = "spike.ist"
    private let roots: [SpikeRole: [String]]

    public init(roots: [SpikeRole: [String]] = [:]) {
        var all: [SpikeRole: [String]] = [:]
        for role in SpikeRole.allCases { all[role] = roots[role] ?? [Self.defaultRoot] }
        self.roots = all
    }

    /// Reads `SPIKE_TRUST_ROOT_*`: comma-separated trust domains, trimmed;
    /// unset or empty means `spike.ist`. A bad entry is an error naming the variable.
    public static func fromEnvironment(_ env: [String: String]) throws(SettingError) -> TrustRoots {
        var roots: [SpikeRole: [String]] = [:]
        for role in SpikeRole.allCases {
            let variable = role.trustRootVariable
            guard let raw = env[variable], !raw.trimmingCharacters(in: " \t").isEmpty else { continue }
            var list: [String] = []
            for entry in raw.split(separator: ",", omittingEmptySubsequences: false) {
                let domain = String(entry).trimmingCharacters(in: " \t")
                do {
                    _ = try SpiffeID(trustDomain: domain, path: "")
                } catch {
                    throw SettingError(setting: variable, problem: "entry \"\(domain)\" is not a trust domain: \(error)")
                }
                list.append(domain)
            }
            roots[role] = list
        }
        return TrustRoots(roots: roots)
    }

    public func roots(for role: SpikeRole) -> [String] { roots[role] ?? [Self.defaultRoot] }

    /// Whether `id` has `role` under one of its roots.
    public func id(_ id: SpiffeID, hasRole role: SpikeRole) -> Bool {
        roots(for: role).contains { root in
            guard let base = try? SpiffeID(trustDomain: root, path: role.path) else { return false }
            return id.isSelfOrBelow(base)
        }
    }

    /// The roles `id` holds (usually one).
    public func roles(of id: SpiffeID) -> [SpikeRole] { SpikeRole.allCases.filter { self.id(id, hasRole: $0) } }
}

/// A bad setting: names the setting and what is expected, in one line.
public struct SettingError: Error, Equatable, Sendable, CustomStringConvertible {
    public let setting: String
    public let problem: String
    public init(setting: String, problem: String) {
        self.setting = setting
        self.problem = problem
    }
    public var description: String { "\(setting): \(problem)" }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s.removeFirst() }
        while let l = s.last, chars.contains(l) { s.removeLast() }
        return String(s)
    }
}
