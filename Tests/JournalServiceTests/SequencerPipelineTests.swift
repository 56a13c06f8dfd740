import Foundation
import Journal
import JournalService
import Testing

/// A batch as the pipeline sees it, named so that a test can tell which one an action carries.
struct StandInBatch: PipelineBatch, Equatable {
    let name: String
    let appended: Int
    let next: JournalState
    let maxTaken: Int64?
}

/// The sequencer's decisions, driven step by step without a database: each test
/// plays the loop's part, performing nothing and reporting outcomes.
@Suite("Sequencer pipeline")
struct SequencerPipelineTests {
    typealias Pipeline = SequencerPipeline<StandInBatch>

    let start = ContinuousClock.now
    /// 2026-11-22T04:30:00Z.
    let wallStart: Int64 = 1_795_321_800_000_000

    /// The moment `milliseconds` after the start.
    func at(_ milliseconds: Int) -> SequencerTime {
        SequencerTime(instant: start + .milliseconds(milliseconds), microseconds: wallStart + Int64(milliseconds) * 1000)
    }

    /// A journal of `size` entries whose last checkpoint covers `checkpointed` (one checkpoint, or none).
    static func state(size: Int, checkpointed: Int? = nil, lastSequencedAt: Int64 = .min) -> JournalState {
        var edge = TreeEdge()
        for leaf in 0..<size { _ = edge.append(leafHash: [UInt8](repeating: UInt8(leaf & 0xFF), count: 32)) }
        return JournalState(
            edge: edge, chainHash: [UInt8](repeating: 0, count: 32), lastSequencedAt: lastSequencedAt, checkpointCount: checkpointed == nil ? 0 : 1,
            lastCheckpointSize: checkpointed.map(UInt64.init))
    }

    /// A batch taking intake ids up to `maxTaken`, after which the journal holds `size` entries.
    static func batch(_ name: String, appended: Int, size: Int, maxTaken: Int64?) -> StandInBatch {
        StandInBatch(name: name, appended: appended, next: state(size: size, checkpointed: 0), maxTaken: maxTaken)
    }

    /// The state once a checkpoint of `state` is issued as checkpoint `id`.
    static func checkpointed(_ state: JournalState, id: Int64) -> (state: JournalState, record: CheckpointRecord) {
        var issued = state
        issued.checkpointCount = id
        issued.lastCheckpointSize = state.size
        return (issued, CheckpointRecord(id: id, treeSize: state.size, rootHash: state.edge.root(), issuedAt: 0, note: "note \(id)"))
    }

    /// A pipeline over a journal of `size` entries checkpointed at `size` at the start.
    func pipeline(size: Int = 0, batchSize: Int = 100, witnesses: Int = 1) -> Pipeline {
        let state = Self.state(size: size, checkpointed: size)
        return Pipeline(
            state: state, batchSize: batchSize,
            schedule: CheckpointSchedule(within: .seconds(1), reissue: .seconds(60), lastCheckpointSize: UInt64(size), now: start),
            ledger: WitnessLedger(lastNoteIDs: Array(repeating: 1, count: witnesses), checkpointCount: 1))
    }

    /// Takes a full first batch and writes it on connection 0, then takes a second
    /// on connection 1 while the first is being written; returns the second.
    @discardableResult
    func takeSecondWhileFirstIsWritten(_ pipeline: inout Pipeline) -> StandInBatch {
        pipeline.partitionsEnsured(month: "2026-11")
        let empty = pipeline.state
        #expect(pipeline.nextAction(at: at(1)) == .takeBatch(connection: 0, after: empty, limit: 100, now: wallStart + 1000, above: 0))
        let first = Self.batch("first", appended: 100, size: 100, maxTaken: 100)
        pipeline.batchTaken(first)
        #expect(pipeline.nextAction(at: at(2)) == .writeBatch(first, connection: 0))
        #expect(pipeline.nextAction(at: at(3)) == .takeBatch(connection: 1, after: first.next, limit: 100, now: wallStart + 3000, above: 100))
        let second = Self.batch("second", appended: 100, size: 200, maxTaken: 200)
        pipeline.batchTaken(second)
        return second
    }

    /// Takes and writes `batch` 600 ms after the start's checkpoint, when the growth
    /// it brings is due for one, and checks that the checkpoint is issued only once the
    /// batch has committed; returns it (checkpoint #2, issued at 605 ms).
    func checkpointAfterGrowth(_ pipeline: inout Pipeline, _ batch: StandInBatch) -> (state: JournalState, record: CheckpointRecord) {
        pipeline.partitionsEnsured(month: "2026-11")
        _ = pipeline.nextAction(at: at(600))
        pipeline.batchTaken(batch)
        #expect(pipeline.nextAction(at: at(601)) == .writeBatch(batch, connection: 0))
        #expect(pipeline.nextAction(at: at(602)) == .awaitWrite)
        pipeline.writeCommitted(at: start + .milliseconds(603))
        #expect(pipeline.nextAction(at: at(604)) == .issueCheckpoint(batch.next, now: wallStart + 604_000))
        let issued = Self.checkpointed(batch.next, id: 2)
        pipeline.checkpointIssued(issued.state, checkpoint: issued.record, at: start + .milliseconds(605))
        return issued
    }

    @Test("A month's partitions come first; batches alternate connections, the next taken above the one being written, while it commits")
    func batchTakenWhileAnotherCommits() {
        var pipeline = pipeline()
        let month = SequencerPipeline<StandInBatch>.Action.ensurePartitions(month: "2026-11", containing: [wallStart, wallStart + 32 * 86_400_000_000])
        #expect(pipeline.nextAction(at: at(0)) == month)
        // The second is taken on the other connection while the first is written, starting where it ends, above its ids.
        let second = takeSecondWhileFirstIsWritten(&pipeline)
        #expect(pipeline.nextAction(at: at(5)) == .awaitWrite)
        pipeline.writeCommitted(at: start + .milliseconds(6))
        #expect(pipeline.nextAction(at: at(7)) == .writeBatch(second, connection: 1))
        #expect(pipeline.nextAction(at: at(8)) == .takeBatch(connection: 0, after: second.next, limit: 100, now: wallStart + 8000, above: 200))
        let nothing = Self.batch("nothing", appended: 0, size: 200, maxTaken: nil)
        pipeline.batchTaken(nothing)
        #expect(pipeline.nextAction(at: at(9)) == .awaitWrite)
        pipeline.writeCommitted(at: start + .milliseconds(10))
        #expect(pipeline.nextAction(at: at(11)) == .rollBack(connection: 0))
        pipeline.rolledBack()
        // Drained: the growth is due for a checkpoint half a second after the last one.
        #expect(pipeline.nextAction(at: at(100)) == .waitForIntake(.milliseconds(400)))
        #expect(pipeline.state == second.next)
    }

    @Test("A failed batch fails the next: the batch taken meanwhile is never written until the one before has committed")
    func failedBatchFailsTheNext() {
        var pipeline = pipeline()
        takeSecondWhileFirstIsWritten(&pipeline)
        // Until the first commits (a failure ends the run with its error), every step waits for it:
        // the second batch, which starts where the first ends, is never written, and neither
        // partitions nor checkpoints nor further batches are started meanwhile.
        for step in 4..<2000 where step % 97 == 0 {
            #expect(pipeline.nextAction(at: at(step)) == .awaitWrite, "at \(step) ms")
        }
        pipeline.stop()
        #expect(pipeline.nextAction(at: at(2001)) == .awaitWrite)
    }

    @Test("Checkpoints: growth is checkpointed within half the delay once the batches before commit, each is copied to the witnesses, a failed copy is retried, an unchanged tree is re-signed")
    func checkpoints() {
        var pipeline = pipeline(size: 100, witnesses: 2)
        let second = checkpointAfterGrowth(&pipeline, Self.batch("growth", appended: 50, size: 150, maxTaken: 150))
        let copies = WitnessLedger(lastNoteIDs: [1, 1], checkpointCount: 1).copies(upTo: 2)
        #expect(pipeline.nextAction(at: at(606)) == .publish(copies, latest: second.record))
        pipeline.published([copies[0]])
        // The batch was not full: the intake is drained, and the tree is checkpointed (wait at most half a second).
        #expect(pipeline.nextAction(at: at(607)) == .waitForIntake(.milliseconds(500)))
        _ = pipeline.nextAction(at: at(700))
        pipeline.batchTaken(Self.batch("empty", appended: 0, size: 150, maxTaken: nil))
        #expect(pipeline.nextAction(at: at(701)) == .rollBack(connection: 1))
        pipeline.rolledBack()
        #expect(pipeline.nextAction(at: at(30_000)) == .waitForIntake(.milliseconds(500)))
        _ = pipeline.nextAction(at: at(30_001))
        pipeline.batchTaken(Self.batch("empty", appended: 0, size: 150, maxTaken: nil))
        _ = pipeline.nextAction(at: at(30_002))
        pipeline.rolledBack()
        // Unchanged for the re-issue interval: signed again; the witness that missed #2 gets #2 and #3.
        #expect(pipeline.nextAction(at: at(60_605)) == .issueCheckpoint(second.state, now: wallStart + 60_605_000))
        let third = Self.checkpointed(second.state, id: 3)
        pipeline.checkpointIssued(third.state, checkpoint: third.record, at: start + .milliseconds(60_606))
        let retried = pipeline.nextAction(at: at(60_607))
        #expect(retried == .publish([WitnessLedger.Copy(directory: 0, ids: 3...3), WitnessLedger.Copy(directory: 1, ids: 2...3)], latest: third.record))
    }

    @Test("A full batch is followed by the next at once; a due checkpoint is issued between them")
    func checkpointBetweenFullBatches() {
        var pipeline = pipeline(size: 100)
        let issued = checkpointAfterGrowth(&pipeline, Self.batch("full", appended: 100, size: 200, maxTaken: 200))
        _ = pipeline.nextAction(at: at(606))
        pipeline.published([WitnessLedger.Copy(directory: 0, ids: 2...2)])
        #expect(pipeline.nextAction(at: at(607)) == .takeBatch(connection: 1, after: issued.state, limit: 100, now: wallStart + 607_000, above: 0))
    }

    @Test("Shutdown with a batch in flight: the batch taken meanwhile is still written, both commit, a last checkpoint covers them, then the run ends")
    func shutdownWithBatchInFlight() {
        var pipeline = pipeline()
        let second = takeSecondWhileFirstIsWritten(&pipeline)
        pipeline.stop()
        #expect(pipeline.nextAction(at: at(4)) == .awaitWrite)
        pipeline.writeCommitted(at: start + .milliseconds(5))
        #expect(pipeline.nextAction(at: at(6)) == .writeBatch(second, connection: 1))
        #expect(pipeline.nextAction(at: at(7)) == .awaitWrite, "no batch is taken once stopping")
        pipeline.writeCommitted(at: start + .milliseconds(8))
        #expect(pipeline.nextAction(at: at(9)) == .issueCheckpoint(second.next, now: wallStart + 9000))
        let last = Self.checkpointed(second.next, id: 2)
        pipeline.checkpointIssued(last.state, checkpoint: last.record, at: start + .milliseconds(10))
        #expect(pipeline.nextAction(at: at(11)) == .publish([WitnessLedger.Copy(directory: 0, ids: 2...2)], latest: last.record))
        pipeline.published([WitnessLedger.Copy(directory: 0, ids: 2...2)])
        #expect(pipeline.nextAction(at: at(12)) == .finish)
    }

    @Test("Shutdown of an idle, checkpointed journal ends at once")
    func shutdownIdle() {
        var pipeline = pipeline(size: 100)
        pipeline.stop()
        #expect(pipeline.nextAction(at: at(1)) == .finish)
    }

    @Test("With no batch being written, the scan starts above the ids taken long enough ago (the intake floor)")
    func intakeFloor() {
        var pipeline = pipeline()
        pipeline.partitionsEnsured(month: "2026-11")
        #expect(pipeline.nextAction(at: at(0)) == .takeBatch(connection: 0, after: pipeline.state, limit: 100, now: wallStart, above: 0))
        let batch = Self.batch("some", appended: 10, size: 10, maxTaken: 500)
        pipeline.batchTaken(batch)
        _ = pipeline.nextAction(at: at(1))
        _ = pipeline.nextAction(at: at(2))
        pipeline.writeCommitted(at: start + .milliseconds(3))
        _ = pipeline.nextAction(at: at(4))
        #expect(pipeline.nextAction(at: at(11_000)) == .takeBatch(connection: 1, after: batch.next, limit: 100, now: wallStart + 11_000_000, above: 500))
    }
}

@Suite("Witness ledger")
struct WitnessLedgerTests {
    @Test("An empty directory starts with the newest checkpoint only; an up-to-date one gets the new one; a failed copy is retried whole")
    func copies() {
        var ledger = WitnessLedger(lastNoteIDs: [7, nil, 5], checkpointCount: 7)
        #expect(ledger.copies(upTo: 7) == [WitnessLedger.Copy(directory: 1, ids: 7...7), WitnessLedger.Copy(directory: 2, ids: 6...7)])
        ledger.copied(WitnessLedger.Copy(directory: 1, ids: 7...7))
        #expect(ledger.copies(upTo: 8) == [0, 1, 2].map { WitnessLedger.Copy(directory: $0, ids: ($0 == 2 ? 6 : 8)...8) })
        for copy in ledger.copies(upTo: 8) { ledger.copied(copy) }
        #expect(ledger.copies(upTo: 8).isEmpty)
    }
}
