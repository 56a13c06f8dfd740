public import ArgumentParser
public import DaemonRuntime
import Foundation
import Journal
import Keyring
import Logging
import ServiceLifecycle
import Settings
import Store
import SubjectRequests
import Systemd

/// `osmose-dsard`: the DPO's daemon. Checks every request's deadline daily (and at
/// start), reports those nearing or past it, and the openings of restricted
/// records, through the journal, its log and an optional mail command; and works
/// the queue of packs and evidence files `osmosectl dsar … --queue` files, with
/// the master key it holds as a credential.
public struct SubjectRequestDaemon: AsyncParsableCommand {
    /// Its command line: `--config`, `--help` with its exit statuses, `--version`.
    public static let configuration = CommandConfiguration.daemon(
        .dsard, abstract: "Watches subject requests' deadlines and builds packs and evidence files for the DPO.",
        discussion: """
            Checks the deadlines of open subject requests at start and every dsar.check_interval, reporting those \
            nearing (dsar.warn_days) or past their due day, and the openings of restricted records, to the journal, \
            its log and dsar.mail_command. Builds the access packs and evidence files queued with osmosectl dsar … --queue.

            Master key: the master-key credential, else dsar.master_key_file.
            """,
        exitStatuses: [.success, .failure, .invalidConfiguration, .databaseUnavailable, .keyUnavailable],
        statusDetails: [.keyUnavailable: "the master key is missing or not the one that wrapped the keyring"])

    /// The daemon's options (`--config`).
    @OptionGroup public var options: DaemonOptions

    /// Creates the command with no options given.
    public init() {}

    /// Runs until SIGTERM.
    public func run() async throws {
        let daemon = try DaemonContext(.dsard, logLabel: "osmose.dsar", options: options)
        let configuration = daemon.configuration
        let settings = configuration.subjectRequests
        guard let timeZone = TimeZone(identifier: settings.timeZone) else {
            throw ConfigurationError(.invalidValue, file: daemon.configurationPath, line: nil, column: nil, reason: "dsar.time_zone: \(settings.timeZone) is not known")
        }
        let master = try MasterKey.load(
            credential: Credentials().path(of: MasterKey.credentialName), orFile: settings.masterKeyFile, setting: "dsar.master_key_file")
        let connectionString = configuration.subjectRequestConnection
        let ring = try await Connection.withConnection(connectionString, applicationName: "osmose-dsard", logger: daemon.logger) { connection in
            try await DataKeyRing.load(on: connection, master: master)
        }
        let watch = DeadlineWatchService(
            connectionString: connectionString, timeZone: timeZone, warnDays: settings.warnDays, interval: settings.checkInterval,
            mail: MailCommand(command: settings.mailCommand, to: settings.mailTo, from: settings.mailFrom), logger: daemon.logger,
            notifier: daemon.notifier)
        let jobs = PackJobWorker(
            connectionString: connectionString, ring: ring, settings: PackSettings(timeZone: timeZone, establishment: settings.establishment),
            scratch: NSTemporaryDirectory(), logger: daemon.logger)
        try? daemon.notifier.ready(status: "watching deadlines; working the pack queue")
        try await daemon.runServiceGroup([.init(service: watch), .init(service: jobs)])
        try? daemon.notifier.stopping(status: "stopped")
    }
}
