public import ArgumentParser
public import DaemonRuntime
import Foundation
import KeyManagement
import Keyring
import Logging
import ServiceLifecycle
import Settings
import Store
import Systemd

/// `osmose-keyd`: started by its timer (or on demand), it starts the rotations
/// whose cryptoperiod has ended, re-encrypts in the background until every
/// running rotation is finished, then exits. SIGTERM stops it after the current
/// batch; the next start resumes from the last committed batch.
public struct KeyDaemon: AsyncParsableCommand {
    /// Its command line: `--config`, `--help` with its exit statuses, `--version`.
    public static let configuration = CommandConfiguration.daemon(
        .keyd, abstract: "Rotates data keys and re-encrypts in the background, then exits.",
        discussion: """
            Rotates data keys whose cryptoperiod (policies/keys.yaml) has ended, re-encrypts the values \
            under older keys in rate-limited batches while the care service keeps serving, retires a key \
            once a scan proves nothing uses it, and exits when no rotation is left. SIGTERM stops it after \
            the current batch; the next start resumes.

            Master key: the master-key credential, else keys.master_key_file.
            """,
        exitStatuses: [.success, .failure, .invalidConfiguration, .databaseUnavailable, .keyUnavailable],
        statusDetails: [
            .success: "done, or stopped by SIGTERM after the current batch",
            .keyUnavailable: "the master key is missing or not the one that wrapped the keyring (nothing is changed)",
        ])

    /// The daemon's options (`--config`).
    @OptionGroup public var options: DaemonOptions

    /// Creates the command with no options given.
    public init() {}

    /// Works every due and running rotation to its end, or until SIGTERM.
    public func run() async throws {
        let daemon = try DaemonContext(.keyd, logLabel: "osmose.keys", options: options)
        let configuration = daemon.configuration
        let logger = daemon.logger
        let notifier = daemon.notifier
        let policy = try KeyPolicy.load(path: configuration.keyPolicyPath)
        let master = try MasterKey.load(
            credential: Credentials().path(of: MasterKey.credentialName), orFile: configuration.keys.masterKeyFile, setting: "keys.master_key_file")
        let stopped = try await Connection.withConnection(configuration.keysConnection, applicationName: "osmose-keyd", logger: logger) { connection in
            let ring = try await DataKeyRing.load(on: connection, master: master)
            let worker = RotationWorker(policy: policy, master: master, ring: ring, logger: logger) { status in try? notifier.send(["STATUS": status]) }
            return try await daemon.runToCompletion(readyStatus: "checking key schedules") {
                let summary = try await worker.run(on: connection, until: { Task.isShuttingDownGracefully })
                logger.info("done", metadata: ["osmose.keys.rewritten": "\(summary.rewritten)", "osmose.keys.finished": "\(summary.finished)"])
                return Task.isShuttingDownGracefully
            }
        }
        try? notifier.stopping(status: stopped ? "stopped; the next start resumes" : "no rotation left")
    }
}
