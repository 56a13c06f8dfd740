import Age
import Foundation
import Journal
import JournalArchive
import Retention
import Store
import TestSupport

/// A retention fixture whose journal spans three past months, sequenced and
/// checkpointed as osmose-journald would have at those times, with two archive
/// directories and an age identity whose recipient the archives are encrypted to.
/// The months are placed relative to today (UTC), so that under the shipped policy
/// (12 months online):
///
/// - `due`: 14 months ago, due since the first day of last month;
/// - `notDue`: 12 months ago, due on the first day of next month;
/// - `last`: 11 months ago, the journal's current month (never listed).
struct JournalMonthsFixture {
    let base: RetentionFixture
    let journald: Connection
    let signer: NoteSignerKey
    let identity: AgeIdentity
    let scratch: String
    var state: JournalState

    let due: JournalMonth
    let notDue: JournalMonth
    let last: JournalMonth

    var directories: [String] { ["\(scratch)/cold-a", "\(scratch)/cold-b"] }

    static func month(_ offset: Int, from date: Date = Date()) -> JournalMonth {
        let now = JournalMonth(containing: Int64(date.timeIntervalSince1970 * 1_000_000))
        let index = now.year * 12 + now.month - 1 + offset
        return try! JournalMonth(year: index / 12, month: index % 12 + 1)
    }

    /// A moment `day` days into `month`, microseconds since the Unix epoch.
    static func time(_ month: JournalMonth, day: Int, hour: Int = 12) -> Int64 {
        month.start + Int64(day - 1) * 86_400_000_000 + Int64(hour) * 3_600_000_000
    }

    static func with<Result>(_ name: String, _ body: (inout JournalMonthsFixture) async throws -> Result) async throws -> Result {
        try await RetentionFixture.with(name) { base in
            let journald = try await Connection.connect("\(base.database.connectionString) user=osmose_journald", logger: testLogger)
            return try await withResource(journald, release: { await $0.close() }) { journald in
                let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("retention-months-\(UUID().uuidString)").path
                defer { try? FileManager.default.removeItem(atPath: scratch) }
                for name in ["cold-a", "cold-b"] { try FileManager.default.createDirectory(atPath: "\(scratch)/\(name)", withIntermediateDirectories: true) }
                var fixture = JournalMonthsFixture(
                    base: base, journald: journald, signer: try NoteSignerKey.generate(name: "journal.retention.example"), identity: try AgeIdentity.generate(),
                    scratch: scratch, state: try await journald.perform { try JournalDatabase.loadState(on: $0) }, due: month(-14), notDue: month(-12),
                    last: month(-11))
                try await fixture.journalMonths()
                return try await body(&fixture)
            }
        }
    }

    mutating func journalMonths() async throws {
        for month in [due, notDue] {
            try await append(300, at: Self.time(month, day: 5))
            try await checkpoint(at: Self.time(month, day: 5, hour: 13))
            try await append(300, at: Self.time(month, day: 20))
            try await checkpoint(at: Self.time(month, day: 20, hour: 13))
        }
        try await append(600, at: Self.time(last, day: 3))
        try await checkpoint(at: Self.time(last, day: 3, hour: 13))
    }

    /// Submits `count` events and sequences them at `time`, as osmose-journald would then.
    mutating func append(_ count: Int, at time: Int64) async throws {
        let offset = Int(state.size)
        var generator = SeededGenerator(seed: UInt64(offset) &+ 7)
        let events = (0..<count).map { index in
            var event = AccessEvent(
                source: "osmose-care", requestID: "m-\(offset + index)", action: index % 3 == 0 ? .update : .read, objectType: "patient", result: .success)
            event.actorUserID = UUID.random(using: &generator)
            event.actorRole = "agent"
            event.actorTeam = "sau"
            event.patientID = UUID.random(using: &generator)
            event.purpose = .care
            event.occurredAt = Date(timeIntervalSince1970: Double(time - 2_000_000) / 1_000_000)
            return event
        }
        try await base.admin.transaction { connection in try connection.record(events) }
        try await sequenceIntake(at: time)
    }

    /// Sequences whatever the intake holds (the events of retention, among others) at `time`.
    mutating func sequenceIntake(at time: Int64) async throws {
        try await journald.perform { connection in try JournalDatabase.ensurePartition(on: connection, containing: time) }
        while true {
            let current = state
            let result = try await journald.transaction { connection in try JournalDatabase.appendBatch(on: connection, state: current, limit: 5000, now: time) }
            state = result.state
            if result.appended == 0 { return }
        }
    }

    mutating func checkpoint(at time: Int64) async throws {
        let (signer, current) = (self.signer, state)
        state = try await journald.transaction { connection in try JournalDatabase.issueCheckpoint(on: connection, state: current, signers: [signer], now: time).state }
    }

    /// The months and archives under these directories and recipients.
    func journal(directories: [String]? = nil, recipients: [String]? = nil) throws -> JournalMonthArchives {
        try JournalMonthArchives(
            directories: directories ?? self.directories, recipients: recipients ?? [identity.recipient.description],
            verifierKeys: [signer.verifierKey.encoded], logger: testLogger)
    }

    func builder(_ journal: JournalMonthArchives? = nil) throws -> PlanBuilder {
        PlanBuilder(policy: base.policy.policy, policySHA256: base.policy.sha256, ring: base.ring, journal: try journal ?? self.journal())
    }

    func applier(_ journal: JournalMonthArchives? = nil, actor: SystemActor = .daemon(.retentiond)) throws -> PlanApplier {
        PlanApplier(
            policy: base.policy.policy, policySHA256: base.policy.sha256, ring: base.ring, journal: try journal ?? self.journal(), actor: actor, logger: testLogger)
    }

    /// The month as the cold-archive library lists it.
    func status(_ month: JournalMonth) async throws -> JournalMonthStatus? {
        try await JournalArchiver(directories: directories, recipients: [], verifierKeys: [], actor: .daemon(.retentiond), logger: testLogger)
            .months(on: base.admin).first { $0.month == month }
    }

    /// The files in the archive directories.
    func archiveFiles() -> [String] {
        directories.flatMap { directory in ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).map { "\(directory)/\($0)" } }.sorted()
    }

    /// `osmosectl journal verify` of the database, without witnesses.
    func verifyJournal() async throws -> VerificationReport {
        let key = signer.verifierKey
        return try await base.admin.transaction(isolation: .repeatableRead) { connection in
            try JournalVerifier(key: key, now: Int64(Date().timeIntervalSince1970 * 1_000_000)).verify(DatabaseSnapshot(connection: connection), since: nil)
        }
    }
}
