public import ArgumentParser
internal import CGlibcExtras
public import DaemonRuntime
import Foundation
import Journal
import Logging
import ServiceLifecycle
import Settings
import Store
import Systemd

/// `osmose-journald`: reads the configuration and the signing key, takes the
/// socket systemd passes (or binds `journal.socket`), and runs the sequencer and
/// the intake socket until SIGTERM. Refuses to start, with one line and a
/// documented status, when anything is wrong.
public struct JournalDaemon: AsyncParsableCommand {
    /// Its command line: `--config`, `--help` with its exit statuses, `--version`.
    public static let configuration = CommandConfiguration.daemon(
        .journald,
        abstract: "Sequences access events into the hash-chained journal and signs its checkpoints.",
        discussion: """
            Sequences access events from journal.intake into the hash-chained journal, signs \
            checkpoints, copies them to the witness directories, and accepts events on the local \
            intake socket. Signing keys: the journal-signing-key… credentials, else journal.signing_key_file(s).
            """,
        exitStatuses: [.success, .failure, .invalidConfiguration, .databaseUnavailable, .integrity, .keyUnavailable],
        statusDetails: [
            .integrity:
                "integrity: the stored tree contradicts the last checkpoint, a witness holds a checkpoint the database lacks, or another daemon is appending",
            .keyUnavailable: "a signing key is missing, malformed or not named after the origin",
        ])

    /// The daemon's options (`--config`).
    @OptionGroup public var options: DaemonOptions

    /// Creates the command with no options given.
    public init() {}

    /// Sequences, signs and serves the intake socket until SIGTERM.
    public func run() async throws {
        // Each batch's megabyte buffers stay on the heap instead of fresh mmaps (page faults).
        osmose_keep_buffers_on_heap()
        let daemon = try DaemonContext(.journald, logLabel: "osmose.journal", options: options)
        let configuration = daemon.configuration
        let logger = daemon.logger
        let notifier = daemon.notifier
        let journal = configuration.journal
        let keys = try Self.loadSigningKeys(journal)
        let sockets = try SocketActivation.sockets()
        var listener = sockets.first(where: { $0.name == "intake" })?.fileDescriptor ?? sockets.first?.fileDescriptor
        if listener == nil, journal.socket.hasPrefix("unix:") {
            listener = try IntakeSocketServer.listen(path: String(journal.socket.dropFirst(5)))
        }
        let sequencer = JournalSequencer(
            settings: .init(
                connectionString: configuration.journalConnection, batchSize: journal.batchSize, checkpointWithin: journal.checkpointWithin,
                checkpointReissue: journal.checkpointReissue, witnesses: journal.witnessDirectories.map(WitnessDirectory.init(path:))),
            keys: keys, logger: logger
        ) { state in
            logger.info("ready", metadata: ["osmose.journal.size": "\(state.size)"])
            try? notifier.ready(status: "journal at \(state.size) entries, \(state.checkpointCount) checkpoints")
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: sequencer, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
        ]
        var pool: ConnectionPool?
        if let listener {
            let peers = Dictionary(journal.socketPeers.map { ($0.uid, $0.source) }, uniquingKeysWith: { first, _ in first })
            let socketPool = ConnectionPool(
                configuration: .init(connectionString: configuration.journalConnection, applicationName: "osmose-journald-intake", maximumConnections: 4),
                logger: logger)
            pool = socketPool
            services.append(
                .init(
                    service: IntakeSocketServer(
                        listeningDescriptor: listener, peers: peers, maximumFrameBytes: journal.maximumFrameBytes, pool: socketPool, logger: logger)))
        }
        try await daemon.runServiceGroup(services)
        await pool?.shutdown()
        try? notifier.stopping(status: "stopped")
    }

    /// Every signing key passed: the credentials named `journal-signing-key` or
    /// `journal-signing-key-…` (a rollover adds one), else the configured files.
    static func loadSigningKeys(_ journal: SuiteConfiguration.Journal) throws -> JournalSigningKeys {
        let credentials = Credentials()
        var texts: [(source: String, text: String)] = []
        do {
            for name in credentials.names() where name == "journal-signing-key" || name.hasPrefix("journal-signing-key-") {
                texts.append(("credential \(name)", String(decoding: try credentials.load(name).exposedCopy(), as: UTF8.self)))
            }
        } catch let error as SystemdError {
            throw JournalError(.signingKey, error.message)
        }
        if texts.isEmpty {
            for path in journal.signingKeyFiles {
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw JournalError(.signingKey, "cannot read the signing key file \(path)")
                }
                texts.append(("file \(path)", String(decoding: data, as: UTF8.self)))
            }
        }
        guard !texts.isEmpty else {
            throw JournalError(
                .signingKey, "no signing key: pass the journal-signing-key credential (LoadCredential=journal-signing-key:…) or set journal.signing_key_file")
        }
        let keys = try texts.map { source, text in
            do {
                return try NoteSignerKey(encoded: text.trimmingCharacters(in: .whitespacesAndNewlines))
            } catch {
                throw JournalError(.signingKey, "the signing key in \(source) is not a C2SP note signer key (make one with osmosectl journal keygen)")
            }
        }
        return try JournalSigningKeys(loaded: keys, origin: journal.origin)
    }
}
