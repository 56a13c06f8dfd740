import Foundation
public import Journal
public import Logging
public import ServiceLifecycle
import Store
import Synchronization

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
        let connection = try await Connection.connect(settings.connectionString, applicationName: "osmose-journald", logger: logger)
        defer { Task { await connection.close() } }
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
                var event = AccessEvent(
                    source: "osmose-journald", requestID: UUID().uuidString.lowercased(), action: .keyAdmin, objectType: "journal-signing-key", result: .success)
                event.actorUsername = "osmose-journald"
                event.actorRole = "system"
                event.objectID = String(format: "%08x", adopted.keyID)
                event.purpose = .administration
                event.reason = "adopted as the primary signing key: \(adopted.encoded)".prefix(200).description
                try connection.record(event)
            }
            return prepared
        }
        if let adopted = prepared.adopted {
            logger.notice("signing key adopted as the keyring's primary", metadata: ["osmose.journal.key": "\(adopted.encoded)"])
        }
        for warning in prepared.warnings { logger.warning("\(warning)") }
        var state = try await connection.perform { try JournalDatabase.loadState(on: $0) }
        var publisher = try await WitnessPublisher.reconcile(settings.witnesses, state: state, on: connection, logger: logger)
        var ensuredMonths: Set<String> = []
        var intakeFloor = IntakeFloor()
        var schedule = CheckpointSchedule(
            within: settings.checkpointWithin, reissue: settings.checkpointReissue, lastCheckpointSize: state.lastCheckpointSize, now: .now)
        logger.info("journal loaded", metadata: ["osmose.journal.size": "\(state.size)", "osmose.journal.checkpoints": "\(state.checkpointCount)"])
        onReady(state)

        func checkpoint() async throws {
            let now = Self.microsecondsNow()
            let current = state
            let issued = try await connection.transaction { connection in
                try JournalDatabase.issueCheckpoint(on: connection, state: current, signers: try keys.signers(on: connection), now: now)
            }
            state = issued.state
            schedule.issued(size: state.size, at: .now)
            logger.debug("checkpoint", metadata: ["osmose.journal.checkpoint": "\(issued.checkpoint.id)", "osmose.journal.size": "\(state.size)"])
            await publisher.publish(upTo: issued.checkpoint, on: connection, logger: logger)
        }

        // Batches alternate between two connections: while one writes and commits
        // batch N, the other takes batch N+1 from the intake and sequences it in
        // memory (the daemon's own work, about two fifths of a batch's time, then
        // overlaps PostgreSQL's). Batch N+1 is written only once N has committed, and
        // its write checks that the head is where it starts: a failed batch N makes
        // N+1 fail too, and the daemon restarts from the database (crash-only).
        let second = try await Connection.connect(settings.connectionString, applicationName: "osmose-journald", logger: logger)
        defer { Task { await second.close() } }
        var writing: (task: Task<Void, any Error>, batch: SequencedBatch)?
        /// Waits for the batch being written to commit.
        func settle() async throws {
            guard let (task, batch) = writing else { return }
            writing = nil
            try await task.value
            if let taken = batch.maxTaken { intakeFloor.took(upTo: taken, at: .now) }
        }

        let stop = StopFlag()
        try await withGracefulShutdownHandler {
            var turn = 0
            while !stop.isSet {
                var appended = 0
                repeat {
                    let taker = turn == 0 ? connection : second
                    let now = Self.microsecondsNow()
                    let month = String(JournalEntry.rfc3339(microseconds: max(now, state.lastSequencedAt)).prefix(7))
                    if !ensuredMonths.contains(month) {
                        try await settle()
                        try await connection.perform { connection in
                            try JournalDatabase.ensurePartition(on: connection, containing: now)
                            try JournalDatabase.ensurePartition(on: connection, containing: now + 32 * 86_400_000_000)
                        }
                        ensuredMonths.insert(month)
                    }
                    let current = state
                    let limit = settings.batchSize
                    // While a batch is being written, above it: its rows are still visible
                    // (deleted, not committed), so a scan from lower down would count them
                    // into this batch's range, wait for the commit and find them gone.
                    // Stragglers below are taken once the backlog is drained (the floor's
                    // settled ids and sweeps, as before).
                    let above = writing?.batch.maxTaken ?? intakeFloor.floor(at: .now)
                    let batch = try await taker.perform { connection in
                        try connection.query("BEGIN")
                        // A batch's commit need not wait for its WAL to reach the disk: a
                        // server crash undoes the last batches whole (their intake rows come
                        // back), and the next checkpoint's commit, at the server's
                        // synchronous_commit (on by default), flushes the WAL of every batch
                        // before it, before the checkpoint reaches a witness.
                        try connection.query("SET LOCAL synchronous_commit = off")
                        return try JournalDatabase.takeBatch(on: connection, state: current, limit: limit, now: now, above: above)
                    }
                    try await settle()
                    appended = batch.appended
                    guard appended > 0 else {
                        try await taker.perform { connection in _ = try connection.query("ROLLBACK") }
                        break
                    }
                    state = batch.next
                    writing = (
                        Task {
                            try await taker.perform { connection in
                                try JournalDatabase.writeBatch(on: connection, batch)
                                try connection.query("COMMIT")
                            }
                        }, batch
                    )
                    turn ^= 1
                    if case .issue = schedule.decide(size: state.size, now: .now) {
                        try await settle()
                        try await checkpoint()
                    }
                } while appended == settings.batchSize && !stop.isSet
                try await settle()
                switch schedule.decide(size: state.size, now: .now) {
                case .issue:
                    try await checkpoint()
                case .wait(let delay):
                    _ = try await connection.waitForNotifications(timeout: min(delay, .milliseconds(500)))
                }
            }
        } onGracefulShutdown: {
            stop.set()
        }
        try await settle()
        if state.lastCheckpointSize != state.size { try await checkpoint() }
        logger.info("journal stopped", metadata: ["osmose.journal.size": "\(state.size)"])
    }

    static func microsecondsNow() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_nsec) / 1000
    }
}

/// Where the next batch may start scanning the intake: above ids taken more than
/// `settle` ago (no transaction stays open that long between taking an id and
/// committing, in this suite), and from the start every `sweep` to collect any
/// straggler. A pure value type, tested without I/O.
public struct IntakeFloor: Sendable {
    /// How long an inserting transaction may stay open after taking its id.
    public let settle: Duration
    /// How often a batch scans the whole intake.
    public let sweep: Duration
    private var taken: [(at: ContinuousClock.Instant, id: Int64)] = []
    private var lastSweep: ContinuousClock.Instant?

    /// A floor with the given delays.
    public init(settle: Duration = .seconds(10), sweep: Duration = .seconds(60)) {
        self.settle = settle
        self.sweep = sweep
    }

    /// The id the next batch scans above at `now` (0: the whole intake).
    public mutating func floor(at now: ContinuousClock.Instant) -> Int64 {
        guard let lastSweep, now - lastSweep < sweep else {
            lastSweep = now
            return 0
        }
        return taken.last(where: { now - $0.at >= settle })?.id ?? 0
    }

    /// Records that a batch took every visible id up to `id` at `now`.
    public mutating func took(upTo id: Int64, at now: ContinuousClock.Instant) {
        taken.append((now, id))
        if let settled = taken.lastIndex(where: { now - $0.at >= settle }), settled > 0 { taken.removeFirst(settled) }
    }
}

/// Set once when the service group asks for a graceful shutdown.
final class StopFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// Keeps every witness directory equal to the database's checkpoints: at start it
/// appends what a crash left unwritten and refuses to run when a witness holds a
/// checkpoint the database lacks (a rolled-back or forked database); afterwards it
/// appends each new checkpoint, retrying a failed directory at the next one.
struct WitnessPublisher {
    private var lastWritten: [(directory: WitnessDirectory, id: Int64)]

    static func reconcile(_ directories: [WitnessDirectory], state: JournalState, on connection: Connection, logger: Logger) async throws -> WitnessPublisher {
        var entries: [(WitnessDirectory, Int64)] = []
        for directory in directories {
            let notes = try directory.notes()
            guard let last = notes.last else {
                entries.append((directory, max(0, state.checkpointCount - 1)))
                continue
            }
            let found = try await connection.query("SELECT id FROM journal.checkpoints WHERE note = $1", [last]).rows.first
            guard let id = try found?.int64("id") else {
                throw JournalError(
                    .witness,
                    "\(directory.path) holds a checkpoint the database lacks: the database may have been rolled back or altered; run osmosectl journal verify before anything else")
            }
            entries.append((directory, id))
        }
        var publisher = WitnessPublisher(lastWritten: entries)
        if let latest = try await connection.perform({ try JournalDatabase.latestCheckpoint(on: $0) }) {
            await publisher.publish(upTo: latest, on: connection, logger: logger)
        }
        return publisher
    }

    private init(lastWritten: [(directory: WitnessDirectory, id: Int64)]) { self.lastWritten = lastWritten }

    mutating func publish(upTo latest: CheckpointRecord, on connection: Connection, logger: Logger) async {
        for index in lastWritten.indices where lastWritten[index].id < latest.id {
            let (directory, written) = lastWritten[index]
            do {
                var notes: [String]
                if written == latest.id - 1 {
                    notes = [latest.note]
                } else {
                    notes = try await connection.perform { try JournalDatabase.checkpoints(ids: (written + 1)...latest.id, on: $0) }.map(\.note)
                }
                try directory.append(notes: notes)
                lastWritten[index].id = latest.id
            } catch {
                logger.error("witness copy failed; retried at the next checkpoint", metadata: ["osmose.journal.witness": "\(directory.path)", "error": "\(error)"])
            }
        }
    }
}
