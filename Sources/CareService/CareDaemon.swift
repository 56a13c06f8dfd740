import CareRecords
import Settings
import Foundation
import Hummingbird
import Keyring
import Logging
import NIOCore
import ServiceLifecycle
import Store
import Systemd

/// `osmose-care`: reads the configuration, the master key and the access policy,
/// serves the API, and tells systemd when it is ready. Refuses to start, with
/// one clear line and a non-zero status, when any of them is wrong.
public enum CareDaemon {
    /// Exit statuses: 0 clean stop, 3 configuration or policy invalid, 4 database
    /// unreachable, 6 master key missing or wrong.
    public static func main() async { await run(journalsSuccessfulReads: true) }

    /// The daemon, with the benchmark's switch (see ``CareAPISettings``).
    package static func run(journalsSuccessfulReads: Bool) async {
        let configPath = DaemonCommandLine.configurationPath(program: "osmose-care", summary: "Serves the care-record API.")

        let format = JournaldLogHandler.Format.detect()
        let notifier = SystemdNotifier()
        var logger = Logger(label: "osmose.care") { JournaldLogHandler(label: $0, format: format) }
        do {
            let configuration = try SuiteConfiguration.load(path: configPath)
            logger.logLevel = Logger.Level(rawValue: configuration.logging.level) ?? .info
            let policy = try AccessPolicy.load(path: configuration.accessPolicyPath)
            let master = try loadMasterKey(configuration)
            let pool = ConnectionPool(
                configuration: .init(connectionString: configuration.careConnection, applicationName: "osmose-care", maximumConnections: configuration.database.poolSize),
                logger: logger)
            let ring = try await pool.withConnection { try await DataKeyRing.load(on: $0, master: master) }
            _ = try ring.primaryID(for: .column)
            _ = try ring.primaryID(for: .blindIndex)
            let care = configuration.care
            var settings = CareAPISettings(
                maximumBodyBytes: care.maximumBodyBytes, trustProxy: care.trustProxy,
                sessions: SessionSettings(idleTimeout: care.sessionIdle, lifetime: care.sessionLifetime, maximumFailures: care.maximumLoginFailures, lockout: care.lockout),
                passwordCostExponent: care.passwordCost)
            settings.journalsSuccessfulReads = journalsSuccessfulReads
            if !journalsSuccessfulReads { logger.warning("BENCHMARK BUILD: successful reads are not journaled") }
            let api = CareAPI(pool: pool, ring: ring, policy: policy, settings: settings, logger: logger)
            let serviceLogger = logger
            let address: BindAddress
            if care.listen.hasPrefix("unix:") {
                address = .unixDomainSocket(path: String(care.listen.dropFirst(5)))
            } else {
                let colon = care.listen.lastIndex(of: ":")!
                address = .hostname(String(care.listen[..<colon]), port: Int(care.listen[care.listen.index(after: colon)...])!)
            }
            let application = Application(
                router: api.router(),
                configuration: .init(address: address, serverName: "osmose-care"),
                onServerRunning: { channel in
                    serviceLogger.info("serving", metadata: ["osmose.care.address": "\(channel.localAddress?.description ?? care.listen)"])
                    try? notifier.ready(status: "serving on \(care.listen)")
                },
                logger: serviceLogger)
            let group = ServiceGroup(
                configuration: .init(
                    services: [.init(service: application), .init(service: SystemdWatchdogService(notifier: notifier, logger: logger))],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: serviceLogger))
            try await group.run()
            await pool.shutdown()
            exit(0)
        } catch {
            let status: Int32
            switch error {
            case is ConfigurationError: status = 3
            case is StoreError: status = 4
            case is KeyringError: status = 6
            default: status = 1
            }
            notifier.exitFailing("osmose-care", error, status: status)
        }
    }

    static func loadMasterKey(_ configuration: SuiteConfiguration) throws -> MasterKey {
        try MasterKey.load(credential: Credentials().path(of: MasterKey.credentialName), orFile: configuration.care.masterKeyFile, setting: "care.master_key_file")
    }
}
