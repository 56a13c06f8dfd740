import Age
public import Foundation
public import Journal
import JournalArchive
public import Logging
public import Settings
public import Store

/// The journal months and their cold archives in retention plans, over the
/// cold-archive library (`JournalArchiver`, docs/retention.md):
///
/// - a UTC month whose entries are still in the database is due
///   `journal.online_months` months after it ends: **archive then purge** (written
///   to every archive directory, each copy read back and verified, only then the
///   partition detached and dropped);
/// - a purged month's archive is due `cold_archives.archive_years` years after the
///   month ends: **destroy** (every copy removed);
/// - a legal hold on a journal period overlapping the month keeps both, and the plan
///   names the hold.
///
/// Applying an item checks it again (still due, not held, not done elsewhere) and is
/// idempotent: a run killed between the archive and the purge, or after the purge
/// before its outcome was recorded, finishes it at the rerun and records the same
/// outcome. No month is ever purged without a recorded archive whose every copy
/// reads back with its digest (`JournalArchiver.purge` and `journal.purge_month`
/// check it again).
public struct JournalMonthArchives: JournalMonthRetention {
    let directories: [String]
    let recipients: [any AgePublicRecipient]
    let verifierKeys: [NoteVerifierKey]
    let logger: Logger

    /// The credential osmose-retentiond reads the archive recipients from (one `age1…` a line).
    public static let recipientsCredential = "archive-recipients"

    /// The months and archives under the configuration's cold archive settings.
    /// - Parameters:
    ///   - directories: `archives.directories` (checked when an archive is written: a missing mount is an error then, not now).
    ///   - recipients: the age recipients (`archives.recipients`, or the `archive-recipients` credential's lines).
    ///   - verifierKeys: the log's verifier keys (`journal.verifier_keys`), to verify what is written.
    ///   - logger: where progress goes.
    /// - Throws: ``RetentionError/Code/archiveUnavailable`` when a recipient or a verifier key does not parse.
    public init(directories: [String], recipients: [String], verifierKeys: [String], logger: Logger) throws {
        self.directories = directories
        self.recipients = try recipients.map { text in
            do {
                return try AgeRecipients.parse(text)
            } catch {
                throw RetentionError(.archiveUnavailable, "an archive recipient is not an age recipient (age1… or age1pq1…): \(text.prefix(12))…")
            }
        }
        self.verifierKeys = try verifierKeys.map { text in
            do {
                return try NoteVerifierKey(encoded: text)
            } catch {
                throw RetentionError(.archiveUnavailable, "journal.verifier_keys holds a key that is not a verifier key of a signed note: \(text.prefix(40))")
            }
        }
        self.logger = logger
    }

    /// The archive recipients: the lines of the credential file when the unit passes
    /// one (blank lines and `#` comments ignored), else `configured`.
    /// - Throws: ``RetentionError/Code/archiveUnavailable`` when the credential cannot be read.
    public static func recipients(credentialFile: String?, configured: [String]) throws -> [String] {
        guard let credentialFile else { return configured }
        guard let data = FileManager.default.contents(atPath: credentialFile) else {
            throw RetentionError(.archiveUnavailable, "cannot read the \(recipientsCredential) credential (\(credentialFile))")
        }
        return String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }

    func archiver(_ actor: SystemActor) -> JournalArchiver {
        JournalArchiver(directories: directories, recipients: recipients, verifierKeys: verifierKeys, actor: actor, logger: logger)
    }

    // MARK: terms (the journal's clock, JournalMonthClock)

    static func calendarMonth(_ month: JournalMonth) -> CalendarMonth { try! CalendarMonth(year: month.year, month: month.month) }

    /// The first day a month's entries are due to leave the database.
    static func onlineTerm(_ month: JournalMonth, _ policy: RetentionPolicy) -> CivilDate {
        JournalMonthClock(policy: policy).archiveDue(calendarMonth(month))
    }

    /// The first day a month's archive is due to be destroyed (`JournalMonth.end(plusYears:)`, as a day).
    static func archiveTerm(_ month: JournalMonth, _ policy: RetentionPolicy) -> CivilDate {
        JournalMonthClock(policy: policy).destructionDue(calendarMonth(month))
    }

    static func lastDay(_ month: JournalMonth) -> CivilDate { calendarMonth(month).end.adding(days: -1) }

    /// The spans of the holds on journal periods overlapping `month` (UTC days).
    static func holds(on month: JournalMonth, _ holds: [LegalHold]) -> [HoldSpan] {
        let utc = TimeZone(identifier: "UTC")!
        return holds.compactMap { hold in
            guard case .journalPeriod(let from, let through) = hold.subject,
                JournalMonthClock.period(from: from, through: through, covers: calendarMonth(month))
            else { return nil }
            return hold.span(in: utc)
        }
    }

    static func monthItem(_ month: JournalMonth, _ policy: RetentionPolicy, heldBy: [Int64]? = nil) -> PlanItem {
        PlanItem(
            key: "journal-month/\(month)", dataClass: .journal, action: .archiveThenPurge,
            rule: "\(policy.journal.onlineMonths) months online after the month ends, then a verified cold archive (journal.online_months)",
            basis: ["month_end": lastDay(month)], dueOn: onlineTerm(month, policy), heldBy: heldBy)
    }

    static func archiveItem(_ month: JournalMonth, purged: CivilDate, _ policy: RetentionPolicy, heldBy: [Int64]? = nil) -> PlanItem {
        PlanItem(
            key: "cold-archive/\(month)", dataClass: .coldArchives, action: .destroy,
            rule: "\(policy.coldArchives.archiveYears) years after the month ends (cold_archives.archive_years)",
            basis: ["month_end": lastDay(month), "purged": purged], dueOn: archiveTerm(month, policy), heldBy: heldBy)
    }

    // MARK: plan

    /// The months due to be archived and purged as of `asOf`, and, with
    /// `includeArchives`, the archives due to be destroyed; apart, those legal holds keep.
    /// A month the journal has not moved past yet (`current`) or without entries is never listed.
    public func plan(asOf: CivilDate, policy: RetentionPolicy, holds: [LegalHold], includeArchives: Bool, on connection: Connection) async throws
        -> (due: [PlanItem], held: [PlanItem])
    {
        var due: [PlanItem] = []
        var held: [PlanItem] = []
        for status in try await archiver(.daemon(.retentiond)).months(on: connection) {
            let month = status.month
            let spans = Self.holds(on: month, holds)
            switch status.state {
            case .online, .archived:
                switch RetentionDecision.deciding(term: Self.onlineTerm(month, policy), on: asOf, holds: spans) {
                case .due: due.append(Self.monthItem(month, policy))
                case .held(_, let by): held.append(Self.monthItem(month, policy, heldBy: by))
                case .notDue, .never: break
                }
            case .purged where includeArchives:
                let purged = CivilDate(utc: Date(timeIntervalSince1970: Double(status.archive?.purgedAt ?? 0) / 1_000_000))
                switch RetentionDecision.deciding(term: Self.archiveTerm(month, policy), on: asOf, holds: spans) {
                case .due: due.append(Self.archiveItem(month, purged: purged, policy))
                case .held(_, let by): held.append(Self.archiveItem(month, purged: purged, policy, heldBy: by))
                case .notDue, .never: break
                }
            case .empty, .current, .purged, .destroyed:
                break
            }
        }
        return (due, held)
    }

    /// Refuses, before anything is changed, a plan holding journal months when the
    /// archive settings cannot write them (no directory or a missing one, no
    /// recipient, no verifier key).
    public func checkSettings(for items: [PlanItem]) throws {
        guard items.contains(where: { $0.dataClass == .journal }) else { return }
        do {
            try archiver(.daemon(.retentiond)).checkWriteSettings()
        } catch let error as JournalArchiveError {
            throw RetentionError(.archiveUnavailable, "journal months cannot be archived: \(error.message); nothing was changed", underlying: error)
        }
    }

    // MARK: apply

    /// Applies one journal item after checking it again as of `now`: archives then
    /// purges a month, or destroys an archive. An item done by an earlier attempt of
    /// the same run (killed before its outcome was recorded) is reported done as if
    /// done now; one done by someone else before the run is skipped, saying so.
    /// - Throws: ``RetentionError/Code/archiveUnavailable`` when the archive settings are
    ///   unusable; `JournalArchiveError` when writing, verifying or purging fails (the
    ///   run stops there; its rerun resumes at this item).
    public func apply(_ item: PlanItem, plan: Int64, policy: RetentionPolicy, actor: SystemActor, dryRun: Bool, now: Date, on connection: Connection) async throws
        -> ItemOutcome
    {
        let month: JournalMonth
        do {
            month = try JournalMonth(parsing: item.target)
        } catch {
            throw RetentionError(.planModified, "\(item.key) does not name a journal month")
        }
        let archiver = archiver(actor)
        let (holds, runStarted) = try await connection.perform { connection in
            (
                try LegalHolds.list(all: true, on: connection),
                try connection.query("SELECT (extract(epoch FROM started_at) * 1000000)::bigint AS at FROM ops.retention_runs WHERE plan_id = $1", [plan])
                    .singleRow()?.int64("at")
            )
        }
        guard let status = try await archiver.months(on: connection).first(where: { $0.month == month }) else {
            return ItemOutcome(key: item.key, outcome: .skipped, detail: "the journal holds no month \(month)")
        }
        let today = CivilDate(utc: now)
        let term = item.dataClass == .journal ? Self.onlineTerm(month, policy) : Self.archiveTerm(month, policy)
        switch RetentionDecision.deciding(term: term, on: today, holds: Self.holds(on: month, holds)) {
        case .held(_, let by):
            return ItemOutcome(key: item.key, outcome: .skipped, detail: "kept by legal hold \(by.map(String.init).joined(separator: ", "))")
        case .notDue(let later):
            return ItemOutcome(key: item.key, outcome: .skipped, detail: "no longer due: its term is now \(later) (the policy changed since the plan)")
        case .due, .never:
            break
        }
        do {
            switch item.dataClass {
            case .journal: return try await archiveThenPurge(item, status, archiver: archiver, runStarted: runStarted, dryRun: dryRun, on: connection)
            case .coldArchives:
                return try await destroy(item, status, archiver: archiver, policy: policy, runStarted: runStarted, dryRun: dryRun, now: now, on: connection)
            case .careRecords, .subjectRequests, .sessions:
                throw RetentionError(.planModified, "\(item.key) is not a journal item")
            }
        } catch let error as JournalArchiveError where error.code == .invalidArgument {
            throw RetentionError(.archiveUnavailable, "\(month) cannot be archived: \(error.message)", underlying: error)
        } catch let error as JournalArchiveError where error.code == .notReady {
            // Not over, no covering checkpoint, or tiles not all stored yet: nothing was
            // changed; a later plan lists the month again.
            return ItemOutcome(key: item.key, outcome: .skipped, detail: "not ready: \(error.message)")
        }
    }

    private func archiveThenPurge(
        _ item: PlanItem, _ status: JournalMonthStatus, archiver: JournalArchiver, runStarted: Int64?, dryRun: Bool, on connection: Connection
    ) async throws -> ItemOutcome {
        let month = status.month
        switch status.state {
        case .purged, .destroyed:
            guard let record = status.archive else { return ItemOutcome(key: item.key, outcome: .skipped, detail: "\(month) holds no entry any more") }
            if let runStarted, let purgedAt = record.purgedAt, purgedAt >= runStarted {
                return Self.purgedOutcome(item, record)
            }
            return ItemOutcome(
                key: item.key, outcome: .skipped,
                detail: "already archived and purged before this run (\(record.fileName) sha256 \(record.archiveSHA256))")
        case .empty, .current:
            return ItemOutcome(key: item.key, outcome: .skipped, detail: "\(month) is \(status.state.rawValue): nothing to archive")
        case .online, .archived:
            break
        }
        if dryRun {
            let written = try await archiver.write(month, dryRun: true, on: connection)
            if written.alreadyArchived {
                let purge = try await archiver.purge(month, dryRun: true, on: connection)
                return ItemOutcome(
                    key: item.key, outcome: .done,
                    detail: "would purge entries \(purge.firstSequence)…\(purge.lastSequence): archived in \(purge.fileName), every copy read back intact",
                    valuesRemoved: Int64(purge.lastSequence - purge.firstSequence + 1), removedSHA256: purge.archiveSHA256)
            }
            return ItemOutcome(
                key: item.key, outcome: .done,
                detail: "would archive entries \(written.firstSequence)…\(written.lastSequence) (\(written.checkpointCount) checkpoints) to \(written.fileName) in \(written.copies.count) directories, read each copy back and verify it, then purge them",
                valuesRemoved: Int64(written.entryCount))
        }
        let written = try await archiver.write(month, on: connection)
        _ = try await archiver.purge(month, on: connection)
        guard let record = try await archiver.months(on: connection).first(where: { $0.month == month })?.archive, record.purgedAt != nil else {
            throw RetentionError(.refused, "\(month) was archived and purged, but its record does not say so: run osmosectl journal verify")
        }
        logger.notice(
            "journal month archived and purged", metadata: ["osmose.journal.month": "\(month)", "osmose.archive.sha256": "\(written.archiveSHA256 ?? record.archiveSHA256)"])
        return Self.purgedOutcome(item, record)
    }

    /// The outcome of a month purged by this run, from its record alone (so that a
    /// rerun after a kill records the same).
    static func purgedOutcome(_ item: PlanItem, _ record: ArchiveRecord) -> ItemOutcome {
        ItemOutcome(
            key: item.key, outcome: .done,
            detail: "archived entries \(record.firstSequence)…\(record.lastSequence) to \(record.fileName) sha256 \(record.archiveSHA256), "
                + "\(record.copies.count) copies read back and verified (\(record.copies.joined(separator: ", "))); purged \(record.purgedEntries ?? 0) entries",
            valuesRemoved: Int64(record.purgedEntries ?? 0), removedSHA256: record.archiveSHA256)
    }

    private func destroy(
        _ item: PlanItem, _ status: JournalMonthStatus, archiver: JournalArchiver, policy: RetentionPolicy, runStarted: Int64?, dryRun: Bool, now: Date,
        on connection: Connection
    ) async throws -> ItemOutcome {
        let month = status.month
        guard let record = status.archive else { return ItemOutcome(key: item.key, outcome: .skipped, detail: "\(month) has no recorded archive") }
        switch status.state {
        case .destroyed:
            if let runStarted, let destroyedAt = record.destroyedAt, destroyedAt >= runStarted { return Self.destroyedOutcome(item, record) }
            return ItemOutcome(key: item.key, outcome: .skipped, detail: "already destroyed before this run (\(record.fileName) sha256 \(record.archiveSHA256))")
        case .purged:
            break
        case .empty, .current, .online, .archived:
            return ItemOutcome(key: item.key, outcome: .skipped, detail: "\(month) is still online: its archive is destroyed only after the purge")
        }
        let microseconds = Int64(now.timeIntervalSince1970 * 1_000_000)
        let receipt = try await archiver.destroy(month, archiveYears: policy.coldArchives.archiveYears, now: microseconds, dryRun: dryRun, on: connection)
        if dryRun {
            return ItemOutcome(
                key: item.key, outcome: .done, detail: "would remove \(receipt.copies.count) copies of \(receipt.fileName) sha256 \(receipt.archiveSHA256)",
                valuesRemoved: Int64(receipt.copies.count), removedSHA256: receipt.archiveSHA256)
        }
        return Self.destroyedOutcome(item, record)
    }

    static func destroyedOutcome(_ item: PlanItem, _ record: ArchiveRecord) -> ItemOutcome {
        ItemOutcome(
            key: item.key, outcome: .done,
            detail: "destroyed \(record.copies.count) copies of \(record.fileName) sha256 \(record.archiveSHA256) (entries \(record.firstSequence)…\(record.lastSequence))",
            valuesRemoved: Int64(record.copies.count), removedSHA256: record.archiveSHA256)
    }
}
