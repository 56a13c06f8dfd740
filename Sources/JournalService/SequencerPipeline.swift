import Glibc
public import Journal

/// What the pipeline needs to know of a batch taken from the intake:
/// ``SequencedBatch`` in the daemon, a stand-in in tests.
public protocol PipelineBatch: Sendable {
    /// How many entries it holds (0: the intake had nothing to take).
    var appended: Int { get }
    /// The journal's state once it is written.
    var next: JournalState { get }
    /// The highest intake id it took.
    var maxTaken: Int64? { get }
}

extension SequencedBatch: PipelineBatch {}

/// A moment as the sequencer reads the clocks: the monotonic clock for delays, the
/// wall clock for the journal's timestamps and months.
public struct SequencerTime: Sendable, Hashable {
    /// The monotonic clock.
    public var instant: ContinuousClock.Instant
    /// The wall clock, in microseconds since the Unix epoch.
    public var microseconds: Int64

    /// A moment.
    public init(instant: ContinuousClock.Instant, microseconds: Int64) {
        self.instant = instant
        self.microseconds = microseconds
    }

    /// Now.
    public static func now() -> SequencerTime {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return SequencerTime(instant: .now, microseconds: Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_nsec) / 1000)
    }
}

/// The decisions of osmose-journald's sequencing loop: a value type that says what
/// to do next and is told how it went, tested without I/O. ``JournalSequencer``
/// performs each action (database, witness files, waiting) and reports back.
///
/// Batches alternate between two connections: while one writes and commits batch N,
/// the other takes batch N+1 from the intake and sequences it in memory after N's
/// end (the daemon's own work, about two fifths of a batch's time, then overlaps
/// PostgreSQL's). N+1 is written only once N has committed, and its write checks
/// that the journal's head is where it starts: when N fails, N+1 is never written,
/// and the daemon restarts from the database (crash-only). Batches follow each other
/// while they come back full; then the pipeline settles and either issues a
/// checkpoint or waits for new intake. The month partitions are created before a
/// month's first batch, a checkpoint is issued as soon as ``CheckpointSchedule``
/// says so (once every batch before it has committed), each checkpoint is copied to
/// the witness directories (``WitnessLedger``), and ``IntakeFloor`` says where a
/// batch may start scanning the intake.
public struct SequencerPipeline<Batch: PipelineBatch>: Sendable {
    /// What the loop should do next.
    public enum Action: Sendable {
        /// Create the partitions holding these times (microseconds), then call
        /// ``partitionsEnsured(month:)``. Never while a batch is being written.
        case ensurePartitions(month: String, containing: [Int64])
        /// On connection `connection` (0 or 1), begin a transaction and take up to
        /// `limit` intake rows with ids above `above`, sequenced after `after` at
        /// `now`; then call ``batchTaken(_:)``.
        case takeBatch(connection: Int, after: JournalState, limit: Int, now: Int64, above: Int64)
        /// Start writing and committing `batch` on its connection without waiting
        /// for it; the next action comes at once.
        case writeBatch(Batch, connection: Int)
        /// Roll back the empty batch's transaction on `connection`, then call ``rolledBack()``.
        case rollBack(connection: Int)
        /// Wait for the batch being written to commit, then call ``writeCommitted(at:)``;
        /// when it fails, end the run with its error (the batch taken meanwhile is never written).
        case awaitWrite
        /// Sign and store a checkpoint of `state` issued at `now`, then call
        /// ``checkpointIssued(_:checkpoint:at:)``.
        case issueCheckpoint(JournalState, now: Int64)
        /// Copy checkpoints up to `latest` to witness directories, then call
        /// ``published(_:)`` with the copies that succeeded.
        case publish([WitnessLedger.Copy], latest: CheckpointRecord)
        /// Wait for new intake, at most this long; the next action comes afterwards.
        case waitForIntake(Duration)
        /// Everything taken is committed and checkpointed: the run ends.
        case finish
    }

    /// A batch being written.
    private struct Writing {
        let maxTaken: Int64?
    }

    /// Whether the loop takes batch after batch or, the intake drained, settles.
    private enum Phase {
        case draining, idle
    }

    /// Intake rows per batch.
    public let batchSize: Int
    /// The journal's state after every batch taken so far (committed or not).
    public private(set) var state: JournalState
    private var schedule: CheckpointSchedule
    private var floor: IntakeFloor
    private var ledger: WitnessLedger
    private var ensuredMonths: Set<String> = []
    private var phase = Phase.draining
    /// The connection that takes the next batch.
    private var turn = 0
    /// The batch being written: the highest intake id it took.
    private var writing: Writing?
    /// The batch taken and not yet written (or rolled back), on which connection.
    private var taken: (batch: Batch, connection: Int)?
    /// A checkpoint is due; the phase to be in once it is issued.
    private var checkpointThen: Phase?
    /// The checkpoint whose witness copies are to be made.
    private var unpublished: CheckpointRecord?
    private var stopping = false

    /// A pipeline starting from `state` (as loaded from the database).
    /// - Parameters:
    ///   - state: the journal's state.
    ///   - batchSize: intake rows per batch.
    ///   - schedule: when to issue checkpoints.
    ///   - floor: where batches scan the intake.
    ///   - ledger: what each witness directory holds.
    public init(state: JournalState, batchSize: Int, schedule: CheckpointSchedule, floor: IntakeFloor = IntakeFloor(), ledger: WitnessLedger) {
        self.state = state
        self.batchSize = batchSize
        self.schedule = schedule
        self.floor = floor
        self.ledger = ledger
    }

    /// The next thing to do at `now`.
    public mutating func nextAction(at now: SequencerTime) -> Action {
        if let (batch, connection) = taken {
            // The batch before must have committed: the write checks the head against it.
            if writing != nil { return .awaitWrite }
            guard batch.appended > 0 else { return .rollBack(connection: connection) }
            return startWriting(batch, on: connection, at: now)
        }
        if let latest = unpublished { return .publish(ledger.copies(upTo: latest.id), latest: latest) }
        if checkpointThen != nil {
            if writing != nil { return .awaitWrite }
            return .issueCheckpoint(state, now: now.microseconds)
        }
        if phase == .draining && !stopping {
            let month = String(JournalEntry.rfc3339(microseconds: max(now.microseconds, state.lastSequencedAt)).prefix(7))
            if !ensuredMonths.contains(month) {
                if writing != nil { return .awaitWrite }
                return .ensurePartitions(month: month, containing: [now.microseconds, now.microseconds + 32 * 86_400_000_000])
            }
            // While a batch is being written, above it: its rows are still visible
            // (deleted, not committed), so a scan from lower down would count them
            // into this batch's range, wait for the commit and find them gone.
            // Stragglers below are taken once the backlog is drained (the floor's
            // settled ids and sweeps).
            let above = writing?.maxTaken ?? floor.floor(at: now.instant)
            return .takeBatch(connection: turn, after: state, limit: batchSize, now: now.microseconds, above: above)
        }
        if writing != nil { return .awaitWrite }
        if stopping {
            guard state.lastCheckpointSize != state.size else { return .finish }
            checkpointThen = phase
            return .issueCheckpoint(state, now: now.microseconds)
        }
        switch schedule.decide(size: state.size, now: now.instant) {
        case .issue:
            checkpointThen = .draining
            return .issueCheckpoint(state, now: now.microseconds)
        case .wait(let delay):
            phase = .draining
            return .waitForIntake(min(delay, .milliseconds(500)))
        }
    }

    private mutating func startWriting(_ batch: Batch, on connection: Int, at now: SequencerTime) -> Action {
        taken = nil
        writing = Writing(maxTaken: batch.maxTaken)
        state = batch.next
        turn = 1 - connection
        phase = batch.appended == batchSize ? .draining : .idle
        if case .issue = schedule.decide(size: state.size, now: now.instant) { checkpointThen = phase }
        return .writeBatch(batch, connection: connection)
    }

    /// The partitions of `month` (and the next) exist.
    public mutating func partitionsEnsured(month: String) {
        ensuredMonths.insert(month)
    }

    /// The batch asked for was taken (its transaction stays open until it is written or rolled back).
    public mutating func batchTaken(_ batch: Batch) {
        taken = (batch, turn)
    }

    /// The empty batch's transaction was rolled back: the intake is drained for now.
    public mutating func rolledBack() {
        taken = nil
        phase = .idle
    }

    /// The batch being written committed at `instant`.
    public mutating func writeCommitted(at instant: ContinuousClock.Instant) {
        if let maxTaken = writing?.maxTaken { floor.took(upTo: maxTaken, at: instant) }
        writing = nil
    }

    /// The checkpoint asked for was issued at `instant`; `state` is the journal's state with it.
    public mutating func checkpointIssued(_ state: JournalState, checkpoint: CheckpointRecord, at instant: ContinuousClock.Instant) {
        self.state = state
        schedule.issued(size: state.size, at: instant)
        if let next = checkpointThen { phase = next }
        checkpointThen = nil
        unpublished = ledger.copies(upTo: checkpoint.id).isEmpty ? nil : checkpoint
    }

    /// These witness copies were made; any other is retried at the next checkpoint.
    public mutating func published(_ copies: [WitnessLedger.Copy]) {
        for copy in copies { ledger.copied(copy) }
        unpublished = nil
    }

    /// Shut down: write what is taken, commit it, checkpoint it, then finish.
    public mutating func stop() {
        stopping = true
    }
}

extension SequencerPipeline.Action: Equatable where Batch: Equatable {}
