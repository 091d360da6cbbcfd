import ArgumentParser
import Logging
import NexusService
import Recovery
import SpiffeIdentity

/// `spike-recovery drill`: would recovery work now? With the nexus's settings
/// and identity, asks every keeper for its shard, checks the shards against
/// each other and the store, writes nothing, wipes everything.
struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Non-destructive recovery drill: which keepers hold a good shard, and does the key open the store?",
        discussion: """
            Settings: those of `nexus` (SPIKE_NEXUS_KEEPER_PEERS, SPIKE_NEXUS_SHAMIR_THRESHOLD, \
            SPIKE_NEXUS_SHAMIR_SHARES, SPIKE_NEXUS_DATA_DIR, SPIKE_NEXUS_KEEPER_REQUEST_TIMEOUT, \
            SPIKE_NEXUS_KEEPER_IDS, SPIKE_SVID_*_FILE or SPIFFE_ENDPOINT_SOCKET, SPIKE_TRUST_ROOT_*, \
            SPIKE_MEM_LOCK_DISABLED), with a nexus SVID.
            Each keeper is asked once for its shard; nothing is contributed, the database is opened read-only.
            Keeper status: ok (its shard agrees with the key), no_shard, wrong_shard (disagrees with the key \
            that opens the store, a broken answer, or unchecked: the detail says which), unreachable, \
            wrong_identity (the TLS handshake refused its SPIFFE ID).
            Exit status: 0 every keeper ok and the key opens the store; 1 anything else; 64 bad settings.
            """)

    @Flag(help: "Print the report as one JSON object on stdout.") var json = false
    @Flag(help: "As for nexus: a missing database is not a bad setting (the key is then not verified).")
    var allowEmptyStore = false

    func run() async throws {
        let logger: Logger
        do {
            logger = try Settings.startProcess(label: "spike-drill")
        } catch let error as OperatorError {
            throw fail(error)
        }
        let settings: NexusSettings
        do {
            settings = try await NexusSettings.fromEnvironment(logger: logger, deadline: nil, allowEmptyStore: allowEmptyStore)
        } catch let error as OperatorError {
            throw fail(error)
        }
        let node = NexusNode(config: settings.config, trustRoots: settings.roots, source: settings.source, logger: logger)
        let report: DrillReport
        do {
            report = try await node.makeDrill().run()
        } catch let error as SettingError {
            throw fail(OperatorError(error.description, exitCode: 64))
        } catch {
            throw fail(OperatorError("drill: \(error)"))
        }
        if json { Console.json(report.json) } else { Console.say(report.table) }
        if !report.healthy { throw ExitCode(1) }
    }
}
