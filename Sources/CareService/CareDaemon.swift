public import ArgumentParser
import CareRecords
public import DaemonRuntime
import Hummingbird
import Journal
import Keyring
import Logging
import NIOCore
import ServiceLifecycle
import Settings
import Store
import Systemd

/// `osmose-care`: reads the configuration, the master key and the access policy,
/// serves the API, and tells systemd when it is ready. Refuses to start, with
/// one clear line and a documented status, when any of them is wrong.
public struct CareDaemon: AsyncParsableCommand {
    /// Its command line: `--config`, `--help` with its exit statuses, `--version`.
    public static let configuration = CommandConfiguration.daemon(
        .care, abstract: "Serves the care-record API.",
        discussion: "Master key: the master-key credential, else care.master_key_file.",
        exitStatuses: [.success, .failure, .invalidConfiguration, .databaseUnavailable, .keyUnavailable],
        statusDetails: [.keyUnavailable: "the master key is missing or not the one that wrapped the keyring"])

    /// The daemon's options (`--config`).
    @OptionGroup public var options: DaemonOptions

    /// Creates the command with no options given.
    public init() {}

    /// Serves until SIGTERM, journaling every request.
    public func run() async throws { try await Self.serve(options: options, journalsSuccessfulReads: true) }

    /// The daemon, with the benchmark's switch (see ``CareAPISettings``).
    package static func serve(options: DaemonOptions, journalsSuccessfulReads: Bool) async throws {
        let daemon = try DaemonContext(.care, logLabel: "osmose.care", options: options)
        let configuration = daemon.configuration
        let logger = daemon.logger
        let policy = try AccessPolicy.load(path: configuration.accessPolicyPath)
        let master = try MasterKey.load(
            credential: Credentials().path(of: MasterKey.credentialName), orFile: configuration.care.masterKeyFile, setting: "care.master_key_file")
        let pool = ConnectionPool(
            configuration: .init(connectionString: configuration.careConnection, applicationName: "osmose-care", maximumConnections: configuration.database.poolSize),
            logger: logger)
        let ring = try await pool.withConnection { try await DataKeyRing.load(on: $0, master: master) }
        _ = try ring.primaryID(for: .column)
        _ = try ring.primaryID(for: .blindIndex)
        let care = configuration.care
        var settings = CareAPISettings(
            maximumBodyBytes: care.maximumBodyBytes, trustProxy: care.trustProxy, trustedProxies: care.trustedProxies,
            sessions: SessionSettings(idleTimeout: care.sessionIdle, lifetime: care.sessionLifetime, maximumFailures: care.maximumLoginFailures, lockout: care.lockout),
            passwordCostExponent: care.passwordCost)
        settings.journalsSuccessfulReads = journalsSuccessfulReads
        if !journalsSuccessfulReads { logger.warning("BENCHMARK BUILD: successful reads are not journaled") }
        let api = CareAPI(pool: pool, ring: ring, policy: policy, settings: settings, logger: logger)
        let notifier = daemon.notifier
        let listening = Listening(
            socketGroup: try care.socketGroup.map(SocketGroup.init(named:)), notifier: notifier, logger: logger, metadataKey: "osmose.care.address")
        let application = api.application(
            address: bindAddress(care.listen), serverName: "osmose-care",
            onServerRunning: { channel in listening.announce(listen: care.listen, address: channel.localAddress?.description) },
            logger: logger)
        try await daemon.runServiceGroup([.init(service: application), .init(service: listening)])
        await pool.shutdown()
    }

    /// `unix:/path`, or `HOST:PORT` (validated by the configuration).
    static func bindAddress(_ listen: String) -> BindAddress {
        if listen.hasPrefix("unix:") { return .unixDomainSocket(path: String(listen.dropFirst(5))) }
        let colon = listen.lastIndex(of: ":")!
        return .hostname(String(listen[..<colon]), port: Int(listen[listen.index(after: colon)...])!)
    }
}
