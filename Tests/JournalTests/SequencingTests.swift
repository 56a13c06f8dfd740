import Foundation
import Journal
import Store
import Testing
import TestSupport

/// A journal database with the journald role's connection, for sequencing tests.
struct JournalFixture {
    let database: TestDatabase
    let admin: Connection
    let journald: Connection
    let signer: NoteSignerKey

    static func make(_ purpose: String) async throws -> JournalFixture {
        let database = try await TestDatabase.create(purpose)
        let admin = try await Connection.connect(database.connectionString, logger: testLogger)
        try await migrate(admin)
        let journald = try await Connection.connect("\(database.connectionString) user=osmose_journald", logger: testLogger)
        return JournalFixture(database: database, admin: admin, journald: journald, signer: try NoteSignerKey.generate(name: "journal.test.example"))
    }

    /// Inserts `count` events into the intake as the care role would.
    func submit(_ count: Int, offset: Int = 0) async throws {
        // Fixed ids, the same on every run.
        var generator = SeededGenerator(seed: UInt64(offset))
        let events = (0..<count).map { index in
            var event = AccessEvent(source: "osmose-care", requestID: "r-\(offset + index)", action: .read, objectType: "patient", result: .success)
            event.actorUserID = UUID.random(using: &generator)
            event.actorRole = "agent"
            event.actorTeam = "sau"
            event.patientID = UUID.random(using: &generator)
            event.purpose = .care
            event.clientIP = index % 2 == 0 ? "10.1.2.3" : "2001:db8::7"
            event.userAgent = "tests\twith tab"
            return event
        }
        try await admin.transaction { connection in try connection.record(events) }
    }

    /// Sequences everything in the intake in batches of `batch`.
    func drain(_ state: JournalState, batch: Int = 97) async throws -> JournalState {
        var state = state
        try await journald.perform { connection in
            let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
            try JournalDatabase.ensurePartition(on: connection, containing: now)
        }
        while true {
            let current = state
            let result = try await journald.transaction { connection in
                try JournalDatabase.appendBatch(on: connection, state: current, limit: batch, now: Int64(Date().timeIntervalSince1970 * 1_000_000), above: 0)
            }
            state = result.state
            if result.appended < batch { return state }
        }
    }

    func checkpoint(_ state: JournalState) async throws -> (state: JournalState, checkpoint: CheckpointRecord) {
        let signer = self.signer
        return try await journald.transaction { connection in
            try JournalDatabase.issueCheckpoint(on: connection, state: state, signers: [signer], now: Int64(Date().timeIntervalSince1970 * 1_000_000))
        }
    }

    func verify(since: Int64? = nil, witnesses: [(name: String, notes: [String], latest: String?)] = []) async throws -> VerificationReport {
        let key = signer.verifierKey
        return try await admin.transaction(isolation: .repeatableRead) { connection in
            try JournalVerifier(key: key, now: Int64(Date().timeIntervalSince1970 * 1_000_000))
                .verify(DatabaseSnapshot(connection: connection), since: since, witnesses: witnesses)
        }
    }

    func close() async {
        await admin.close()
        await journald.close()
        await database.drop()
    }

    /// Runs `body` with a new fixture, closed and dropped on every path (a failed `#require` too).
    static func with<Result>(_ purpose: String, _ body: (JournalFixture) async throws -> Result) async throws -> Result {
        try await withResource(try await make(purpose), release: { await $0.close() }, body)
    }
}

@Suite("Journal sequencing in PostgreSQL")
struct SequencingTests {
    @Test("Intake rows move into the journal exactly once, in order; checkpoints, proofs and verify agree")
    func appendAndVerify() async throws {
        try await JournalFixture.with("sequencing") { fixture in
            var state = try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) }
            #expect(state.size == 0)
            try await fixture.submit(700)
            state = try await fixture.drain(state)
            #expect(state.size == 700)
            let first = try await fixture.checkpoint(state)
            try await fixture.submit(300, offset: 700)
            state = try await fixture.drain(first.state)
            let second = try await fixture.checkpoint(state)
            #expect(second.checkpoint.id == 2 && second.checkpoint.treeSize == 1000)

            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM journal.intake").rows[0].int("n") == 0)
            let requestIDs = try await fixture.admin.query("SELECT count(DISTINCT canonical) AS n, min(seq) AS lo, max(seq) AS hi FROM journal.entries").rows[0]
            #expect(try requestIDs.int("n") == 1000 && requestIDs.int("lo") == 0 && requestIDs.int("hi") == 999)

            let reloaded = try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) }
            #expect(reloaded == second.state, "a restart rebuilds exactly the state in memory")

            let report = try await fixture.verify()
            #expect(report.passed, "\(report.failures)")
            #expect(report.entriesChecked == 1000 && report.checkpointsChecked == 2 && report.tilesChecked == 3)
            let incremental = try await fixture.verify(since: 1)
            #expect(incremental.passed && incremental.entriesChecked == 300, "\(incremental.failures)")

            let opened = try Checkpoint.open(second.checkpoint.note, logKey: fixture.signer.verifierKey)
            let (proof, entry) = try await fixture.admin.perform { connection in
                (try DatabaseTreeReader(connection: connection).inclusionProof(index: 555, size: 1000), try JournalDatabase.entries(555..<556, on: connection)[0])
            }
            #expect(MerkleTree.verifyInclusion(leafHash: MerkleTree.leafHash(entry.canonical), index: 555, size: 1000, proof: proof, root: opened.rootHash))
            let consistency = try await fixture.admin.perform { try DatabaseTreeReader(connection: $0).consistencyProof(oldSize: 700, newSize: 1000) }
            #expect(MerkleTree.verifyConsistency(oldSize: 700, newSize: 1000, oldRoot: first.checkpoint.rootHash, newRoot: opened.rootHash, proof: consistency))
        }
    }

    @Test("No role may update, delete or truncate the journal; the care role cannot read it")
    func appendOnly() async throws {
        try await JournalFixture.with("appendonly") { fixture in
            try await fixture.submit(10)
            let state = try await fixture.drain(try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) })
            _ = try await fixture.checkpoint(state)
            let partition = try await fixture.admin.query("SELECT relname FROM pg_class WHERE relname LIKE 'entries_2%' LIMIT 1").rows[0].string("relname")
            for statement in [
                "UPDATE journal.entries SET action = 'login'", "DELETE FROM journal.entries", "TRUNCATE journal.entries",
                "TRUNCATE journal.\(partition)", "DELETE FROM journal.\(partition)", "UPDATE journal.checkpoints SET tree_size = 0",
                "DELETE FROM journal.checkpoints", "TRUNCATE journal.checkpoints", "DELETE FROM journal.tiles", "TRUNCATE journal.tiles",
            ] {
                for connection in [fixture.admin, fixture.journald] {
                    await #expect(throws: StoreError.self, "\(statement)") { try await connection.execute(statement) }
                }
            }
            let care = try await Connection.connect("\(fixture.database.connectionString) user=osmose_care", logger: testLogger)
            for table in ["journal.entries", "journal.checkpoints", "journal.tiles", "journal.head", "journal.intake"] {
                await #expect(throws: StoreError.self, "\(table)") { try await care.query("SELECT 1 FROM \(table) LIMIT 1") }
            }
            await care.close()
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM journal.entries").rows[0].int("n") == 10)
            #expect(try await fixture.verify().passed)
        }
    }

    @Test("Pipelined batches: the next batch is taken while one is uncommitted, and is refused when that one rolls back")
    func pipelinedBatches() async throws {
        try await JournalFixture.with("pipelined") { fixture in
            let second = try await Connection.connect("\(fixture.database.connectionString) user=osmose_journald", logger: testLogger)
            let start = try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) }
            try await fixture.journald.perform { try JournalDatabase.ensurePartition(on: $0, containing: Int64(Date().timeIntervalSince1970 * 1_000_000)) }
            try await fixture.submit(20)
            let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
            let first = try await fixture.journald.perform { connection in
                try connection.query("BEGIN")
                let batch = try JournalDatabase.takeBatch(on: connection, state: start, limit: 10, now: now)
                try JournalDatabase.writeBatch(on: connection, batch)
                return batch
            }
            // Taken on the other connection above the first batch, while it is uncommitted.
            let next = try await second.perform { connection in
                try connection.query("BEGIN")
                return try JournalDatabase.takeBatch(on: connection, state: first.next, limit: 10, now: now, above: first.maxTaken ?? 0)
            }
            #expect(first.appended == 10 && next.appended == 10 && next.start == first.next)
            try await fixture.journald.perform { connection in _ = try connection.query("ROLLBACK") }
            await #expect(throws: JournalError(.concurrentWriter, "")) {
                try await second.perform { connection in try JournalDatabase.writeBatch(on: connection, next) }
            }
            try await second.perform { connection in _ = try connection.query("ROLLBACK") }
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM journal.intake").rows[0].int("n") == 20, "both batches' rows are back in the intake")
            #expect(try await fixture.admin.query("SELECT tree_size FROM journal.head").rows[0].int("tree_size") == 0)
            await second.close()
        }
    }

    @Test("A second writer working from a stale head is refused and appends nothing")
    func concurrentWriter() async throws {
        try await JournalFixture.with("writers") { fixture in
            let stale = try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) }
            try await fixture.submit(5)
            _ = try await fixture.drain(stale)
            try await fixture.submit(5, offset: 5)
            await #expect(throws: JournalError.self) { _ = try await fixture.drain(stale) }
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM journal.intake").rows[0].int("n") == 5, "the refused batch left the intake untouched")
            #expect(try await fixture.verify().passed)
        }
    }
}
