public import CareRecords
import Journal
public import Keyring
public import Logging
public import Settings
public import Store

/// The work of one osmose-keyd run: advance the asymmetric keys' lifecycles, start
/// the rotations whose cryptoperiod has ended, then re-encrypt, in paced batches,
/// until every running rotation is finished or the caller asks to stop.
public struct RotationWorker: Sendable {
    let policy: KeyPolicy
    let master: MasterKey
    let ring: DataKeyRing
    let registry: EncryptedColumnRegistry
    let logger: Logger
    let status: @Sendable (String) -> Void

    /// A worker applying `policy` with the keys of `ring`.
    /// - Parameters:
    ///   - policy: cryptoperiods, pace and batch size.
    ///   - master: the master key, which wraps the new keys of the rotations it starts.
    ///   - ring: the keys values are decrypted and re-encrypted with; reloaded once the due rotations are started.
    ///   - registry: what is rotated: the care records' encrypted columns and tokens unless another is given.
    ///   - logger: where progress goes.
    ///   - status: told a line of progress after each batch (osmose-keyd's sd_notify STATUS).
    public init(
        policy: KeyPolicy, master: MasterKey, ring: DataKeyRing, registry: EncryptedColumnRegistry = .care, logger: Logger,
        status: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.policy = policy
        self.master = master
        self.ring = ring
        self.registry = registry
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
            try SigningKeyRollover.advance(overlapHours: policy.signingOverlapHours, actor: Self.actor, on: connection)
                + BackupSigningKeys.advance(overlapHours: policy.signingOverlapHours, actor: Self.actor, on: connection)
                + BackupRecipients.retireUnneeded(actor: Self.actor, on: connection)
        }
        for change in summary.keyChanges { logger.notice("\(change)") }
        summary.started = try await startDueRotations(on: connection)
        try await ring.reload(on: connection)
        let pace = Pace(valuesPerSecond: policy.maximumValuesPerSecond)
        for rotation in try await connection.perform({ try KeyRotation.running(on: $0) }) {
            while !stop() {
                let next = try await connection.perform { [registry] in try KeyRotation.nextTarget(of: rotation, registry: registry, on: $0) }
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
                if try await connection.transaction({ [registry] in try KeyRotation.finish(current, actor: Self.actor, registry: registry, on: $0) }) {
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
            guard let old = try await connection.perform({ try KeyRotation.dueKey(purpose: purpose, cryptoperiodDays: days, on: $0) }) else { continue }
            let rotation = try await connection.transaction { [master, registry] connection in
                try KeyRotation.start(
                    purpose: purpose, reason: "key \(old) reached the end of its \(days)-day cryptoperiod", master: master, cryptoperiodDays: days,
                    actor: Self.actor, registry: registry, on: connection)
            }
            logger.notice("rotation started", metadata: ["osmose.keys.rotation": "\(rotation.id)", "osmose.keys.purpose": "\(purpose.rawValue)"])
            started += 1
        }
        return started
    }

    /// The daemon acting on its own schedule, as the journal and the key records name it.
    static let actor = SystemActor.daemon(.keyd)
}

/// Keeps the average rate of rewritten values under a ceiling.
final class Pace: Sendable {
    private let valuesPerSecond: Int
    private let state: Locked<(start: ContinuousClock.Instant, values: Int)>

    init(valuesPerSecond: Int) {
        self.valuesPerSecond = valuesPerSecond
        state = Locked((ContinuousClock.now, 0))
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
