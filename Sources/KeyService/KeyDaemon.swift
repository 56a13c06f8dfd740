public import ArgumentParser
public import DaemonRuntime
import Foundation
public import Keyring
public import Logging
import ServiceLifecycle
public import Settings
public import Store
import Synchronization
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
        let master = try MasterKey.fromCredential(orFile: configuration.keys.masterKeyFile, setting: "keys.master_key_file")
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

/// The work of one osmose-keyd run.
public struct RotationWorker: Sendable {
    let policy: KeyPolicy
    let master: MasterKey
    let ring: DataKeyRing
    let logger: Logger
    let status: @Sendable (String) -> Void

    /// A worker applying `policy` with the keys of `ring`.
    public init(policy: KeyPolicy, master: MasterKey, ring: DataKeyRing, logger: Logger, status: @escaping @Sendable (String) -> Void = { _ in }) {
        self.policy = policy
        self.master = master
        self.ring = ring
        self.logger = logger
        self.status = status
    }

    /// What a run did.
    public struct Summary: Sendable {
        /// Values rewritten under a newer key.
        public var rewritten = 0
        /// Rotations started because a cryptoperiod ended.
        public var started = 0
        /// Rotations finished (old keys retired).
        public var finished = 0
        /// Lifecycle changes of asymmetric keys: signing-key promotions and retirements, recipients retired.
        public var keyChanges: [String] = []
    }

    /// Starts the rotations that are due, then works every running one until it is
    /// finished or `stop` says so.
    public func run(on connection: Connection, until stop: @Sendable () -> Bool) async throws -> Summary {
        var summary = Summary()
        summary.keyChanges = try await connection.transaction { [policy] connection in
            try SigningKeyRollover.advance(overlapHours: policy.signingOverlapHours, actor: .daemon, on: connection)
                + BackupRecipients.retireUnneeded(actor: .daemon, on: connection)
        }
        for change in summary.keyChanges { logger.notice("\(change)") }
        summary.started = try await startDueRotations(on: connection)
        try await ring.reload(on: connection)
        let pace = Pace(valuesPerSecond: policy.maximumValuesPerSecond)
        for rotation in try await connection.perform({ try KeyRotation.running(on: $0) }) {
            while !stop() {
                let next = try await connection.perform { try KeyRotation.nextTarget(of: rotation, on: $0) }
                if let (target, after) = next {
                    let batch = try await connection.transaction { [ring, policy] connection in
                        try KeyRotation.rewriteBatch(rotation, target: target, after: after, limit: policy.batchSize, ring: ring, on: connection)
                    }
                    summary.rewritten += batch.rewritten
                    status("rotation \(rotation.id): \(target.name), \(summary.rewritten) values rewritten")
                    try await pace.wait(after: batch.rewritten)
                    continue
                }
                // Every target was swept once: wait out the transactions that began
                // before the demotion, then prove that nothing is left under the old keys.
                let fence = try await connection.transaction { try KeyRotation.fence(on: $0) }
                while try await !connection.perform({ try KeyRotation.passed(fence, on: $0) }) {
                    guard !stop() else { return summary }
                    try await Task.sleep(for: .milliseconds(200))
                }
                let current = try await connection.perform { try KeyRotation.running(on: $0).first { $0.id == rotation.id } } ?? rotation
                if try await connection.transaction({ try KeyRotation.finish(current, actor: .daemon, on: $0) }) {
                    summary.finished += 1
                    logger.notice(
                        "rotation finished", metadata: ["osmose.keys.rotation": "\(rotation.id)", "osmose.keys.retired": "\(rotation.fromKeys)"])
                    break
                }
                logger.info("values written under an old key before the demotion: sweeping again", metadata: ["osmose.keys.rotation": "\(rotation.id)"])
            }
        }
        return summary
    }

    /// Starts a rotation for each purpose whose primary key's cryptoperiod has ended.
    func startDueRotations(on connection: Connection) async throws -> Int {
        var started = 0
        for purpose in [DataKeyPurpose.column, .blindIndex] {
            let days = policy.cryptoperiodDays[purpose.rawValue] ?? 365
            let due = try await connection.query(
                """
                SELECT id FROM keys.data_keys WHERE purpose = $1 AND state = 'primary'
                    AND coalesce(rotate_after, created_at + make_interval(days => $2)) <= now()
                    AND NOT EXISTS (SELECT 1 FROM keys.rotations WHERE purpose = $1 AND state = 'running')
                """, [purpose.rawValue, days]
            ).rows.first
            guard let due else { continue }
            let old = try due.int("id")
            let rotation = try await connection.transaction { [master] connection in
                try KeyRotation.start(
                    purpose: purpose, reason: "key \(old) reached the end of its \(days)-day cryptoperiod", master: master, cryptoperiodDays: days,
                    actor: .daemon, on: connection)
            }
            logger.notice("rotation started", metadata: ["osmose.keys.rotation": "\(rotation.id)", "osmose.keys.purpose": "\(purpose.rawValue)"])
            started += 1
        }
        return started
    }
}

/// Keeps the average rate of rewritten values under a ceiling.
final class Pace: Sendable {
    private let valuesPerSecond: Int
    private let state: Mutex<(start: ContinuousClock.Instant, values: Int)>

    init(valuesPerSecond: Int) {
        self.valuesPerSecond = valuesPerSecond
        state = Mutex((ContinuousClock.now, 0))
    }

    func wait(after values: Int) async throws {
        let delay = state.withLock { state -> Duration in
            state.values += values
            let due = state.start + .seconds(Double(state.values) / Double(valuesPerSecond))
            return due - ContinuousClock.now
        }
        if delay > .zero { try await Task.sleep(for: delay) }
    }
}
