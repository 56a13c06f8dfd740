public import ArgumentParser
import Cryptography
public import DaemonRuntime
import Foundation
import Hummingbird
import Journal
import Keyring
import Logging
import NIOCore
import ServiceLifecycle
import Settings
import StaffAccounts
import Store
import Systemd

/// `osmose-console`: reads the configuration and the console key, serves the
/// staff's web pages on loopback or a Unix socket behind the reverse proxy, and
/// tells systemd when it is ready. Refuses to start, with one line and a documented
/// status, when any of them is wrong.
public struct ConsoleDaemon: AsyncParsableCommand {
    /// Its command line: `--config`, `--help` with its exit statuses, `--version`.
    public static let configuration = CommandConfiguration.daemon(
        .console, abstract: "Serves the web console of the DPO, the security officer and sysadmins.",
        discussion: """
            Console key (seals the TOTP seeds): the console-key credential, else console.key_file. \
            Master key (the DPO's pages decrypt the register and access packs): the master-key credential; without it those pages say so.
            """,
        exitStatuses: [.success, .failure, .invalidConfiguration, .databaseUnavailable, .keyUnavailable],
        statusDetails: [.keyUnavailable: "the console key is missing or not 32 bytes, or the master-key credential is unreadable or not the keyring's"])

    /// The daemon's options (`--config`).
    @OptionGroup public var options: DaemonOptions

    /// Creates the command with no options given.
    public init() {}

    /// The name of the systemd credential that carries the console key.
    public static let keyCredential = "console-key"

    /// Serves until SIGTERM.
    public func run() async throws {
        let daemon = try DaemonContext(.console, logLabel: "osmose.console", options: options)
        let configuration = daemon.configuration
        let logger = daemon.logger
        let key = try Self.loadKey(credential: Credentials().path(of: Self.keyCredential), file: configuration.console.keyFile)
        let masterKey = try Self.loadMasterKey(credential: Credentials().path(of: MasterKey.credentialName))
        let pool = ConnectionPool(
            configuration: .init(connectionString: configuration.consoleConnection, applicationName: "osmose-console", maximumConnections: configuration.database.poolSize),
            logger: logger)
        // Fails with status 4 now, rather than on the first request, when the database is unreachable.
        try await pool.withConnection { connection in try await connection.perform { try StaffDirectory.probe(on: $0) } }
        if let masterKey {
            // A master key that is not the keyring's fails now (status 6), not on the DPO's first page.
            do {
                _ = try await pool.withConnection { connection in try await DataKeyRing.load(on: connection, master: masterKey) }
            } catch let error as KeyringError {
                throw ConsoleKeyError("master key: \(error)")
            }
        }
        let console = try await Console(pool: pool, key: key, configuration: configuration, logger: logger, masterKey: masterKey)
        let listen = configuration.console.listen
        let notifier = daemon.notifier
        let listening = Listening(
            socketGroup: try configuration.console.socketGroup.map(SocketGroup.init(named:)), notifier: notifier, logger: logger,
            metadataKey: "osmose.console.address")
        let application = Application(
            router: console.router(),
            configuration: .init(address: Self.bindAddress(listen), serverName: "osmose-console"),
            onServerRunning: { channel in listening.announce(listen: listen, address: channel.localAddress?.description) },
            logger: logger)
        try await daemon.runServiceGroup([.init(service: application), .init(service: listening)])
        await pool.shutdown()
    }

    /// The console key from the credential, else the configured file.
    /// - Throws: ``ConsoleKeyError`` (status 6).
    static func loadKey(credential: String?, file: String?) throws -> ConsoleKey {
        guard let path = credential ?? file else {
            throw ConsoleKeyError("no console key: pass the \(keyCredential) credential (LoadCredential=\(keyCredential):…) or set console.key_file")
        }
        do {
            return try ConsoleKey(try SecretBytes.contentsOfFile(path, maximumSize: 64))
        } catch let error as CryptoError {
            throw ConsoleKeyError("console key \(path): \(error.message)")
        } catch let error as StaffError {
            throw ConsoleKeyError("console key \(path): \(error.message)")
        }
    }

    /// The master key from the `master-key` credential, when the unit passes it.
    /// - Throws: ``ConsoleKeyError`` (status 6) when it is passed but unreadable or malformed.
    static func loadMasterKey(credential: String?) throws -> MasterKey? {
        guard let credential else { return nil }
        do {
            return try MasterKey.load(path: credential)
        } catch {
            throw ConsoleKeyError("master key \(credential): \(error)")
        }
    }

    /// `unix:/path`, or `HOST:PORT` (validated by the configuration).
    static func bindAddress(_ listen: String) -> BindAddress {
        if listen.hasPrefix("unix:") { return .unixDomainSocket(path: String(listen.dropFirst(5))) }
        let colon = listen.lastIndex(of: ":")!
        return .hostname(String(listen[..<colon]), port: Int(listen[listen.index(after: colon)...])!)
    }
}

/// The console key is missing or malformed: exit status 6.
struct ConsoleKeyError: Error, ExitStatusProviding, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
    var exitStatus: ExitStatus { .keyUnavailable }
}
