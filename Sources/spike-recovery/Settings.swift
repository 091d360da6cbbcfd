import Foundation
import Logging
import MutualTLS
import ProcessSupport
import SecureMemory
import ServiceLifecycle
import SpiffeIdentity
import WorkloadAPI

/// Reading the SPIKE environment: every bad value is one line naming the
/// variable and what is expected (exit code 64).
enum Settings {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    static func bad(_ variable: String, _ expected: String) -> OperatorError {
        OperatorError("\(variable): \(expected)", exitCode: 64)
    }

    /// `SPIKE_TLS_MAX_CONNECTIONS`: open connections (handshakes included) the
    /// mTLS port of `keeper` and `nexus` holds; one more is closed at once.
    static let maximumConnectionsVariable = "SPIKE_TLS_MAX_CONNECTIONS"
    static func maximumConnections() throws -> Int {
        try integer(maximumConnectionsVariable, default: MTLSHTTPServer.Limits().maximumConnections, range: 1...65_536)
    }

    /// `:8443`, `host:8443`, `[::1]:8443`; an empty host listens on every IPv4 interface.
    static func listenAddress(_ variable: String, default fallback: String) throws -> ListenAddress {
        let raw = (environment[variable].flatMap { $0.isEmpty ? nil : $0 }) ?? fallback
        do {
            return try ListenAddress.parse(raw, defaultHost: "0.0.0.0")
        } catch {
            throw bad(variable, error.description)
        }
    }

    /// `--metrics-address`: bound to loopback when no host is given.
    static func metricsEndpoint(_ address: String?) async throws -> MetricsEndpoint? {
        guard let address else { return nil }
        let parsed: ListenAddress
        do {
            parsed = try ListenAddress.parse(address, defaultHost: "127.0.0.1")
        } catch {
            throw bad("--metrics-address", error.description)
        }
        do {
            return try await MetricsEndpoint.start(parsed)
        } catch {
            throw OperatorError("--metrics-address: cannot listen on \(parsed): \(error)", exitCode: 1)
        }
    }

    /// The process's own SVID must hold `role` (a keeper serves as a keeper, a
    /// nexus as a nexus) and be valid now; either problem is one line naming
    /// where the SVID came from.
    static func requireOwnRole(_ role: SpikeRole, source: any X509Source, trustRoots: TrustRoots, now: Date = Date()) throws -> SpiffeID {
        let snapshot = source.current
        let me = snapshot.id
        guard trustRoots.id(me, hasRole: role) else {
            throw OperatorError("\(origin(of: source)): the SVID \(me) is not a \(role.rawValue) ID (expected spiffe://<\(role.trustRootVariable)>\(role.path)[/...])",
                                exitCode: 64)
        }
        guard snapshot.notAfter > now else {
            throw OperatorError("\(origin(of: source)): the SVID \(me) expired at \(snapshot.notAfter); nothing can be served with it", exitCode: 64)
        }
        return me
    }

    /// Where an SVID source reads from, as an operator would look for it.
    static func origin(of source: any X509Source) -> String {
        if let files = source as? FileX509Source { return "\(FileX509Source.certVariable) (\(files.certFile))" }
        return "the Workload API"
    }

    /// An SVID-file error, prefixed with the variable that names the file.
    static func namingVariable(_ error: X509SourceError) -> String {
        let file: String?
        switch error {
        case .unreadable(let f, _), .invalid(let f, _): file = f
        default: file = nil
        }
        for variable in [FileX509Source.certVariable, FileX509Source.keyVariable, FileX509Source.bundleVariable]
        where file != nil && environment[variable] == file {
            return "\(variable): \(error)"
        }
        return error.description
    }

    static func integer(_ variable: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        guard let raw = environment[variable], !raw.isEmpty else { return fallback }
        guard let value = Int(raw.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw bad(variable, "expected a whole number in \(range.lowerBound)...\(range.upperBound) (got \"\(raw)\")")
        }
        return value
    }

    /// Go-style durations (`500ms`, `5s`, `2m`, `1h`, `1m30s`) within `range`.
    static func duration(_ variable: String, default fallback: Duration, range: ClosedRange<Duration>) throws -> Duration {
        guard let raw = environment[variable], !raw.isEmpty else { return fallback }
        guard let value = parseDuration(raw), range.contains(value) else {
            throw bad(variable, "expected a duration from \(goStyle(range.lowerBound)) to \(goStyle(range.upperBound)), "
                          + "such as 500ms, 30s, 5m or 1h (got \"\(raw)\")")
        }
        return value
    }

    /// The largest duration `parseDuration` returns: far above every setting's
    /// bound, far below where nanoseconds overflow Int64 (about 292 years).
    static let longestDuration = Duration.seconds(100 * 365 * 86_400)

    /// nil for anything that is not a positive Go-style duration of at most
    /// `longestDuration`; never traps, however many digits.
    static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("µs", 1e-6), ("ns", 1e-9), ("s", 1), ("m", 60), ("h", 3600)]
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        var seconds = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, number.count <= 30, let value = Double(number), value.isFinite else { return nil }
            rest = rest.dropFirst(number.count)
            guard let unit = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
            rest = rest.dropFirst(unit.0.count)
            seconds += value * unit.1
        }
        let longest = Double(longestDuration.components.seconds)
        guard seconds.isFinite, seconds > 0, seconds <= longest else { return nil }
        let nanoseconds = Int64((seconds * 1e9).rounded())
        return nanoseconds > 0 ? .nanoseconds(nanoseconds) : nil
    }

    /// `90s` → `1m30s`-style text for a bound.
    static func goStyle(_ d: Duration) -> String {
        let (s, attos) = d.components
        if s == 0 { return attos >= 1_000_000_000_000_000 ? "\(attos / 1_000_000_000_000_000)ms" : "\(attos / 1_000_000_000)ns" }
        var text = ""
        if s >= 3600 { text += "\(s / 3600)h" }
        if s % 3600 >= 60 { text += "\((s % 3600) / 60)m" }
        if s % 60 > 0 || text.isEmpty { text += "\(s % 60)s" }
        return text
    }

    static func trustRoots() throws -> TrustRoots {
        do {
            return try TrustRoots.fromEnvironment(environment)
        } catch {
            throw OperatorError(error.description, exitCode: 64)
        }
    }

    /// The SVID source: files when SPIKE_SVID_*_FILE are set (watched for
    /// rotation while it runs as a Service), otherwise the Workload API at
    /// SPIFFE_ENDPOINT_SOCKET (followed while it runs).
    /// Rotated files must hold an SVID of `role` (a keeper never starts presenting a nexus ID).
    static func x509Source(role: SpikeRole, trustRoots: TrustRoots, logger: Logger) async throws -> any X509Source & Service {
        let domains = Array(Set(SpikeRole.allCases.flatMap { trustRoots.roots(for: $0) })).sorted()
        do {
            if let files = try FileX509Source.fromEnvironment(
                environment, trustDomains: domains, onReject: { logger.warning("\($0)") },
                refusal: { trustRoots.id($0.id, hasRole: role) ? nil : "\($0.id) is not a \(role.rawValue) ID" }) {
                return files
            }
        } catch {
            throw OperatorError(namingVariable(error), exitCode: 64)
        }
        let endpoint: WorkloadEndpoint
        do {
            endpoint = try WorkloadEndpoint.fromEnvironment(environment)
        } catch {
            throw OperatorError(error.description + " (or set \(FileX509Source.certVariable), \(FileX509Source.keyVariable) and \(FileX509Source.bundleVariable))", exitCode: 64)
        }
        var options = WorkloadAPIX509Source.Options()
        options.selector = SVIDSelector(parsing: environment[workloadHintVariable] ?? "")
        options.startupWait = try duration(workloadWaitVariable, default: .seconds(30), range: .milliseconds(100) ... .seconds(3600))
        logger.info("asking the Workload API at \(endpoint) for \(options.selector)")
        do {
            return try await WorkloadAPIX509Source.start(endpoint: endpoint, options: options) { event in
                switch event {
                case .updated(let s):
                    logger.info("SVID \(s.id) from the Workload API (generation \(s.generation), valid until \(s.notAfter))")
                case .refused(let why): logger.warning("\(why); keeping the previous SVID")
                case .streamLost(let why, let retryIn): logger.warning("Workload API stream lost: \(why); retrying in \(retryIn)")
                case .expired(let s): logger.error("the SVID \(s.id) expired at \(s.notAfter) and the Workload API has sent no newer one")
                }
            }
        } catch {
            // Waiting longer helps an agent that is not up yet, not one whose answers are refused.
            if case .noSVID(_, _, let problem) = error, !problem.hasPrefix("Workload API response refused") {
                throw OperatorError(error.description + "; set \(workloadWaitVariable) to wait longer", exitCode: 1)
            }
            throw OperatorError(error.description, exitCode: 1)
        }
    }

    /// Which SVID to take when the Workload API offers several: a hint, or a SPIFFE ID.
    static let workloadHintVariable = "SPIKE_WORKLOAD_API_SVID_HINT"
    /// How long to wait for the first SVID at start-up.
    static let workloadWaitVariable = "SPIKE_WORKLOAD_API_TIMEOUT"

    static let logLevelVariable = "SPIKE_SYSTEM_LOG_LEVEL"
    static let keeperLogLabel = "spike-keeper"

    /// `SPIKE_SYSTEM_LOG_LEVEL` (case-insensitive, as Go SPIKE reads it); anything else is a bad setting.
    static func logLevel() throws -> Logger.Level {
        guard let raw = environment[logLevelVariable], !raw.isEmpty else { return .info }
        switch raw.lowercased() {
        case "trace": return .trace
        case "debug": return .debug
        case "info": return .info
        case "warn", "warning": return .warning
        case "error": return .error
        default: throw bad(logLevelVariable, "expected one of trace, debug, info, warn, error (got \"\(raw)\")")
        }
    }

    /// `SPIKE_MEM_LOCK_DISABLED`: `true` or `false` (unset: locked).
    static func lockMemory() throws -> Bool {
        let variable = ProcessHardening.memoryLockDisabledVariable
        switch environment[variable] {
        case nil, "", "false"?: return true
        case "true"?: return false
        case let raw?: throw bad(variable, "expected true or false (got \"\(raw)\")")
        }
    }

    /// The start of every command that holds secrets: logging, then the
    /// process hardening its settings ask for; returns the command's logger.
    static func startProcess(label: String) throws -> Logger {
        try bootstrapLogging()
        // Made after the bootstrap: a Logger keeps the handler it was made with.
        let logger = Logger(label: label)
        ProcessHardening.apply(logger: logger, lockMemory: try lockMemory())
        return logger
    }

    static func bootstrapLogging() throws {
        let level = try logLevel()
        // Only the Keeper logs a line per request; everyone else's lines are state changes.
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level, batched: label == keeperLogLabel) }
    }

    /// Runs a long-running command's services until SIGTERM/SIGINT or until one
    /// of them ends the group. A shutdown that overruns its bound is cancelled,
    /// and a service ending out of turn during shutdown is logged, not thrown:
    /// the command's own outcome decides the exit status.
    static func runServices(_ services: [ServiceGroupConfiguration.ServiceConfiguration], logger: Logger) async {
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(5)
        do {
            try await ServiceGroup(configuration: configuration).run()
        } catch {
            logger.notice("shutdown: \(error)")
        }
    }

    /// `SPIKE_RECOVERY_PARENT_PID` (the demo sets it): the process ends with that parent.
    static func parentWatch(logger: Logger) -> ParentProcessWatch? {
        guard let raw = environment[ParentProcessWatch.variable], let parent = Int32(raw) else { return nil }
        return ParentProcessWatch(parent: parent, logger: logger)
    }
}
