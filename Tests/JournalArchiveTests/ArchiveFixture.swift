import Age
import Foundation
import Journal
import JournalArchive
import Logging
import Store
import Testing
import TestSupport

/// A journal spread over three past months, sequenced and checkpointed as
/// osmose-journald would at those times, with two archive directories and an age
/// identity whose recipient archives are encrypted to.
///
/// - 2025-01: entries 0…699 (checkpoints at 300 and 600; none at its end, so its
///   covering checkpoint is February's first, of size 1100);
/// - 2025-02: entries 700…1349 (checkpoints at 1100 and 1350, the latter covering it exactly);
/// - 2025-03: entries 1350…1849 (checkpoint at 1850).
struct ArchiveFixture {
    let database: TestDatabase
    let admin: Connection
    let journald: Connection
    let signer: NoteSignerKey
    let identity: AgeIdentity
    /// A scratch directory holding `cold-a` and `cold-b`, the archive directories.
    let scratch: String
    /// The journal's state after the last append.
    var state: JournalState
    /// Entries added to January between its two checkpoints (shifting every later sequence number).
    var januaryBulk = 0
    /// Events journaled in January after them.
    var januaryEvents: [AccessEvent] = []

    /// January's last sequence number.
    var januaryLast: UInt64 { UInt64(699 + januaryBulk + januaryEvents.count) }

    static let january = try! JournalMonth(year: 2025, month: 1)
    static let february = try! JournalMonth(year: 2025, month: 2)
    static let march = try! JournalMonth(year: 2025, month: 3)

    var directories: [String] { ["\(scratch)/cold-a", "\(scratch)/cold-b"] }
    var identityFile: String { "\(scratch)/identity.txt" }

    /// A moment `days` (and `hours`) into `month`, microseconds since the Unix epoch.
    static func time(_ month: JournalMonth, day: Int, hour: Int = 12) -> Int64 {
        month.start + Int64(day - 1) * 86_400_000_000 + Int64(hour) * 3_600_000_000
    }

    /// A new database with the standard three months journaled.
    static func with<Result>(
        _ purpose: String, januaryBulk: Int = 0, januaryEvents: [AccessEvent] = [], signer: NoteSignerKey? = nil,
        _ body: (inout ArchiveFixture) async throws -> Result
    ) async throws -> Result {
        try await TestDatabase.with(purpose) { database in
            let admin = try await Connection.connect(database.connectionString, logger: testLogger)
            return try await withResource(admin, release: { await $0.close() }) { admin in
                try await migrate(admin)
                let journald = try await Connection.connect("\(database.connectionString) user=osmose_journald", logger: testLogger)
                return try await withResource(journald, release: { await $0.close() }) { journald in
                    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("journal-archive-\(UUID().uuidString)").path
                    defer { try? FileManager.default.removeItem(atPath: scratch) }
                    for name in ["cold-a", "cold-b"] { try FileManager.default.createDirectory(atPath: "\(scratch)/\(name)", withIntermediateDirectories: true) }
                    let identity = try AgeIdentity.generate()
                    try identity.exposedFile(created: "tests").write(toFile: "\(scratch)/identity.txt", atomically: true, encoding: .utf8)
                    var fixture = ArchiveFixture(
                        database: database, admin: admin, journald: journald, signer: try signer ?? NoteSignerKey.generate(name: "journal.archive.example"),
                        identity: identity, scratch: scratch, state: try await journald.perform { try JournalDatabase.loadState(on: $0) }, januaryBulk: januaryBulk,
                        januaryEvents: januaryEvents)
                    try await fixture.journalStandardMonths()
                    return try await body(&fixture)
                }
            }
        }
    }

    mutating func journalStandardMonths() async throws {
        try await append(300, at: Self.time(Self.january, day: 5))
        try await checkpoint(at: Self.time(Self.january, day: 5, hour: 13))
        if januaryBulk > 0 { try await append(januaryBulk, at: Self.time(Self.january, day: 10)) }
        if !januaryEvents.isEmpty {
            let events = januaryEvents
            try await admin.transaction { connection in try connection.record(events) }
            try await sequenceIntake(at: Self.time(Self.january, day: 10, hour: 14))
        }
        try await append(300, at: Self.time(Self.january, day: 15))
        try await checkpoint(at: Self.time(Self.january, day: 15, hour: 13))
        try await append(100, at: Self.time(Self.january, day: 31, hour: 23))
        try await append(400, at: Self.time(Self.february, day: 3))
        try await checkpoint(at: Self.time(Self.february, day: 3, hour: 13))
        try await append(250, at: Self.time(Self.february, day: 20))
        try await checkpoint(at: Self.time(Self.february, day: 20, hour: 13))
        try await append(500, at: Self.time(Self.march, day: 2))
        try await checkpoint(at: Self.time(Self.march, day: 2, hour: 13))
    }

    /// Submits `count` events and sequences them at `time`, as osmose-journald would then.
    mutating func append(_ count: Int, at time: Int64) async throws {
        let offset = Int(state.size)
        var generator = SeededGenerator(seed: UInt64(offset) &+ 1)
        let events = (0..<count).map { index in
            var event = AccessEvent(
                source: "osmose-care", requestID: "a-\(offset + index)", action: index % 3 == 0 ? .update : .read, objectType: "patient", result: .success)
            event.actorUserID = UUID.random(using: &generator)
            event.actorRole = "agent"
            event.actorTeam = index % 2 == 0 ? "sau" : "epl"
            event.patientID = UUID.random(using: &generator)
            event.purpose = .care
            event.clientIP = "10.1.2.\(index % 250)"
            event.occurredAt = Date(timeIntervalSince1970: Double(time - 2_000_000) / 1_000_000)
            return event
        }
        try await admin.transaction { connection in try connection.record(events) }
        try await sequenceIntake(at: time)
    }

    /// Sequences whatever the intake holds (e.g. the journal events of archiving) at `time`.
    mutating func sequenceIntake(at time: Int64) async throws {
        try await journald.perform { connection in try JournalDatabase.ensurePartition(on: connection, containing: time) }
        while true {
            let current = state
            let result = try await journald.transaction { connection in
                try JournalDatabase.appendBatch(on: connection, state: current, limit: 5000, now: time)
            }
            state = result.state
            if result.appended == 0 { return }
        }
    }

    mutating func checkpoint(at time: Int64) async throws {
        let (signer, current) = (self.signer, state)
        state = try await journald.transaction { connection in
            try JournalDatabase.issueCheckpoint(on: connection, state: current, signers: [signer], now: time).state
        }
    }

    /// An archiver to the two directories, encrypted to the fixture's identity.
    func archiver(directories: [String]? = nil, recipients: [any AgePublicRecipient]? = nil) -> JournalArchiver {
        JournalArchiver(
            directories: directories ?? self.directories, recipients: recipients ?? [identity.recipient], verifierKeys: [signer.verifierKey],
            actor: .operator("tests@host via tests", role: .sysadmin), logger: testLogger)
    }

    /// `osmosectl journal verify` of the database, without witnesses.
    func verifyJournal(since: Int64? = nil) async throws -> VerificationReport {
        let key = signer.verifierKey
        return try await admin.transaction(isolation: .repeatableRead) { connection in
            try JournalVerifier(key: key, now: Int64(Date().timeIntervalSince1970 * 1_000_000)).verify(DatabaseSnapshot(connection: connection), since: since)
        }
    }

    /// The number of entries stored with sequence numbers in `range`.
    func storedEntries(_ range: ClosedRange<UInt64>) async throws -> Int {
        try await admin.query("SELECT count(*) AS n FROM journal.entries WHERE seq BETWEEN $1 AND $2", [Int64(range.lowerBound), Int64(range.upperBound)])
            .rows[0].int("n")
    }
}
