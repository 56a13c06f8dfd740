import Foundation
public import Journal
public import Logging
public import ServiceLifecycle
import Store

/// The heart of osmose-journald: moves intake rows into the journal in batches
/// when woken by LISTEN/NOTIFY, signs checkpoints on schedule, and copies every
/// checkpoint to the witness directories.
///
/// Crash-only: all state is in the database, each batch is one transaction, and a
/// restart rebuilds the tree edge from the stored tiles. A lost connection ends
/// the service with an error, so systemd restarts the daemon.
public struct JournalSequencer: Service {
    /// What the sequencer needs.
    public struct Settings: Sendable {
        /// libpq connection string for the journald role.
        public var connectionString: String
        /// Intake rows per transaction.
        public var batchSize: Int
        /// Growth-to-checkpoint delay.
        public var checkpointWithin: Duration
        /// Re-issue interval of an unchanged tree.
        public var checkpointReissue: Duration
        /// The witness directories.
        public var witnesses: [WitnessDirectory]

        /// Creates settings.
        public init(connectionString: String, batchSize: Int, checkpointWithin: Duration, checkpointReissue: Duration, witnesses: [WitnessDirectory]) {
            self.connectionString = connectionString
            self.batchSize = batchSize
            self.checkpointWithin = checkpointWithin
            self.checkpointReissue = checkpointReissue
            self.witnesses = witnesses
        }
    }

    let settings: Settings
    let keys: JournalSigningKeys
    let logger: Logger
    let onReady: @Sendable (JournalState) -> Void

    /// Creates the service; `onReady` runs once the state is loaded and the witnesses reconciled.
    public init(settings: Settings, keys: JournalSigningKeys, logger: Logger, onReady: @escaping @Sendable (JournalState) -> Void) {
        self.settings = settings
        self.keys = keys
        self.logger = logger
        self.onReady = onReady
    }

    public func run() async throws {
        try await Connection.withConnection(settings.connectionString, applicationName: "osmose-journald", logger: logger) { connection in
            try await Connection.withConnection(settings.connectionString, applicationName: "osmose-journald", logger: logger) { second in
                try await run(on: [connection, second])
            }
        }
    }

    /// Runs on two connections: the first holds the lock, listens, issues
    /// checkpoints; both take and write batches in turn.
    private func run(on connections: [Connection]) async throws {
        let connection = connections[0]
        // After a crash the old session may hold the lock until the server notices it
        // is gone: wait a while before concluding that another daemon is running.
        let deadline = ContinuousClock.now + .seconds(30)
        while try await connection.query("SELECT pg_try_advisory_lock(hashtext('osmose-journald')) AS locked").rows.first?.bool("locked") != true {
            guard ContinuousClock.now < deadline else {
                throw JournalError(.concurrentWriter, "another osmose-journald holds the journal's lock on this database")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        try await connection.listen(JournalDatabase.intakeChannel)
        let keys = self.keys
        let prepared = try await connection.transaction { connection in
            let prepared = try keys.prepare(on: connection)
            if let adopted = prepared.adopted {
                try connection.record(
                    .system(
                        by: .daemon(.journald), action: .keyAdmin, objectType: JournalVerifier.signingKeyObjectType,
                        objectID: String(format: "%08x", adopted.keyID), reason: "adopted as the primary signing key: \(adopted.encoded)"))
            }
            return prepared
        }
        if let adopted = prepared.adopted {
            logger.notice("signing key adopted as the keyring's primary", metadata: ["osmose.journal.key": "\(adopted.encoded)"])
        }
        for warning in prepared.warnings { logger.warning("\(warning)") }
        let state = try await connection.perform { try JournalDatabase.loadState(on: $0) }
        let ledger = try await reconcileWitnesses(state: state, on: connection)
        var pipeline = SequencerPipeline<SequencedBatch>(
            state: state, batchSize: settings.batchSize,
            schedule: CheckpointSchedule(
                within: settings.checkpointWithin, reissue: settings.checkpointReissue, lastCheckpointSize: state.lastCheckpointSize, now: .now),
            ledger: ledger)
        logger.info("journal loaded", metadata: ["osmose.journal.size": "\(state.size)", "osmose.journal.checkpoints": "\(state.checkpointCount)"])
        onReady(state)

        var write: Task<Void, any Error>?
        let stop = StopFlag()
        try await withGracefulShutdownHandler {
            while true {
                if stop.isSet { pipeline.stop() }
                switch pipeline.nextAction(at: .now()) {
                case .ensurePartitions(let month, let times):
                    try await connection.perform { connection in
                        for time in times { try JournalDatabase.ensurePartition(on: connection, containing: time) }
                    }
                    pipeline.partitionsEnsured(month: month)
                case .takeBatch(let index, let after, let limit, let now, let above):
                    let batch = try await connections[index].perform { connection in
                        try connection.query("BEGIN")
                        // A batch's commit need not wait for its WAL to reach the disk: a
                        // server crash undoes the last batches whole (their intake rows come
                        // back), and the next checkpoint's commit, at the server's
                        // synchronous_commit (on by default), flushes the WAL of every batch
                        // before it, before the checkpoint reaches a witness.
                        try connection.query("SET LOCAL synchronous_commit = off")
                        return try JournalDatabase.takeBatch(on: connection, state: after, limit: limit, now: now, above: above)
                    }
                    pipeline.batchTaken(batch)
                case .rollBack(let index):
                    try await connections[index].perform { connection in _ = try connection.query("ROLLBACK") }
                    pipeline.rolledBack()
                case .writeBatch(let batch, let index):
                    let writer = connections[index]
                    write = Task {
                        try await writer.perform { connection in
                            try JournalDatabase.writeBatch(on: connection, batch)
                            try connection.query("COMMIT")
                        }
                    }
                case .awaitWrite:
                    try await write?.value
                    write = nil
                    pipeline.writeCommitted(at: .now)
                case .issueCheckpoint(let current, let now):
                    let issued = try await connection.transaction { connection in
                        try JournalDatabase.issueCheckpoint(on: connection, state: current, signers: try keys.signers(on: connection), now: now)
                    }
                    logger.debug("checkpoint", metadata: ["osmose.journal.checkpoint": "\(issued.checkpoint.id)", "osmose.journal.size": "\(issued.state.size)"])
                    pipeline.checkpointIssued(issued.state, checkpoint: issued.checkpoint, at: .now)
                case .publish(let copies, let latest):
                    pipeline.published(await copyToWitnesses(copies, latest: latest, on: connection))
                case .waitForIntake(let delay):
                    _ = try await connection.waitForNotifications(timeout: delay)
                case .finish:
                    logger.info("journal stopped", metadata: ["osmose.journal.size": "\(pipeline.state.size)"])
                    return
                }
            }
        } onGracefulShutdown: {
            stop.set()
        }
    }

    /// Checks every witness directory against the database and brings it up to the
    /// newest checkpoint: appends what a crash left unwritten, and refuses to run when
    /// a witness holds a checkpoint the database lacks (a rolled-back or forked database).
    private func reconcileWitnesses(state: JournalState, on connection: Connection) async throws -> WitnessLedger {
        var lastNoteIDs: [Int64?] = []
        for directory in settings.witnesses {
            guard let last = try directory.notes().last else {
                lastNoteIDs.append(nil)
                continue
            }
            let found = try await connection.query("SELECT id FROM journal.checkpoints WHERE note = $1", [last]).rows.first
            guard let id = try found?.int64("id") else {
                throw JournalError(
                    .witness,
                    "\(directory.path) holds a checkpoint the database lacks: the database may have been rolled back or altered; run osmosectl journal verify before anything else")
            }
            lastNoteIDs.append(id)
        }
        var ledger = WitnessLedger(lastNoteIDs: lastNoteIDs, checkpointCount: state.checkpointCount)
        if let latest = try await connection.perform({ try JournalDatabase.latestCheckpoint(on: $0) }) {
            for copy in await copyToWitnesses(ledger.copies(upTo: latest.id), latest: latest, on: connection) { ledger.copied(copy) }
        }
        return ledger
    }

    /// Makes `copies` (reading from the database the notes older than `latest`);
    /// returns those that succeeded. A failure is logged, and retried at the next checkpoint.
    private func copyToWitnesses(_ copies: [WitnessLedger.Copy], latest: CheckpointRecord, on connection: Connection) async -> [WitnessLedger.Copy] {
        var made: [WitnessLedger.Copy] = []
        for copy in copies {
            let directory = settings.witnesses[copy.directory]
            do {
                let notes =
                    copy.ids == latest.id...latest.id
                    ? [latest.note] : try await connection.perform { try JournalDatabase.checkpoints(ids: copy.ids, on: $0) }.map(\.note)
                try directory.append(notes: notes)
                made.append(copy)
            } catch {
                logger.error("witness copy failed; retried at the next checkpoint", metadata: ["osmose.journal.witness": "\(directory.path)", "error": "\(error)"])
            }
        }
        return made
    }
}

/// Set once when the service group asks for a graceful shutdown.
final class StopFlag: Sendable {
    private let value = Locked(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
