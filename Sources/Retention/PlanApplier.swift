import CareRecords
public import Foundation
public import Journal
public import Keyring
public import Logging
public import Settings
public import Store
import SubjectRequests

/// Applies approved plans: each item is checked again at the moment it is applied
/// (still due, not held, not done elsewhere) and its outcome is committed with the
/// change it describes, so that a run killed at any moment resumes with the next
/// uncommitted batch and ends in the same state. Every change is journaled
/// (action `retention-admin`); a finished run gets its disposition certificate.
public struct PlanApplier: Sendable {
    let policy: RetentionPolicy
    let policySHA256: String
    let builder: PlanBuilder
    let store: CareStore
    let pseudonymiser: Pseudonymiser
    let journal: (any JournalMonthRetention)?
    let actor: SystemActor
    let batchSizes: PlanApplication.BatchSizes
    let logger: Logger

    /// An applier.
    /// - Parameters:
    ///   - policy: the retention policy in force (items are checked against it again).
    ///   - policySHA256: the SHA-256 of its file, recorded in certificates.
    ///   - ring: the data keys (dates to decrypt, pseudonyms to compute).
    ///   - journal: the journal months and archives; nil when the plan holds none.
    ///   - actor: who applies (osmose-retentiond as `system`, or the DPO through osmosectl).
    ///   - batchSizes: items per transaction.
    ///   - logger: where progress goes.
    public init(
        policy: RetentionPolicy, policySHA256: String, ring: DataKeyRing, journal: (any JournalMonthRetention)? = nil, actor: SystemActor,
        batchSizes: PlanApplication.BatchSizes = .standard, logger: Logger
    ) {
        self.policy = policy
        self.policySHA256 = policySHA256
        builder = PlanBuilder(policy: policy, policySHA256: policySHA256, ring: ring)
        store = CareStore(ring: ring)
        pseudonymiser = Pseudonymiser(ring: ring)
        self.journal = journal
        self.actor = actor
        self.batchSizes = batchSizes
        self.logger = logger
    }

    /// What applying a plan did, or, for a dry run, would do.
    public struct Report: Sendable {
        /// The plan.
        public let plan: Int64
        /// The run (nil for a dry run).
        public let run: Int64?
        /// Every item's outcome, in the plan's order.
        public let outcomes: [ItemOutcome]
        /// The certificate's digest, when the run finished now.
        public let certificateSHA256: String?
        /// Whether the run stopped before the end (asked to stop); the next apply resumes it.
        public let interrupted: Bool
    }

    /// The advisory lock that keeps two applies from running at once ("osmose-r").
    static let lockKey: Int64 = 0x6f73_6d6f_7365_2d72

    /// Applies plan `id` to its end (or, with `dryRun`, says what it would do and changes nothing).
    /// - Parameters:
    ///   - id: the plan.
    ///   - dryRun: check every item as applying would, change nothing.
    ///   - now: when it runs (the day items are checked against).
    ///   - stop: asked between batches; true stops the run there (SIGTERM), to be resumed.
    /// - Throws: ``RetentionError`` — `not_found`, `plan_modified` (the stored plan was
    ///   edited), `refused` (not approved, a preview, older than
    ///   ``RetentionPlan/validityDays``), `busy` (another apply holds the lock).
    public func apply(
        plan id: Int64, dryRun: Bool = false, now: @Sendable () -> Date = { Date() }, stop: @Sendable () -> Bool = { false }, on connection: Connection
    ) async throws -> Report {
        try await lock(on: connection)
        do {
            let report = try await applyLocked(plan: id, dryRun: dryRun, now: now, stop: stop, on: connection)
            try await unlock(on: connection)
            return report
        } catch {
            try? await unlock(on: connection)
            throw error
        }
    }

    private func lock(on connection: Connection) async throws {
        // A killed predecessor's session keeps its lock until the server notices the
        // client is gone: wait for it a while before saying another apply runs.
        let deadline = ContinuousClock.now + .seconds(30)
        while try await !connection.query("SELECT pg_try_advisory_lock($1) AS locked", [Self.lockKey]).rows[0].bool("locked") {
            guard ContinuousClock.now < deadline else { throw RetentionError(.busy, "another retention apply is running (osmose-retentiond or osmosectl)") }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    private func unlock(on connection: Connection) async throws {
        _ = try await connection.query("SELECT pg_advisory_unlock($1)", [Self.lockKey])
    }

    private func applyLocked(
        plan id: Int64, dryRun: Bool, now: @Sendable () -> Date, stop: @Sendable () -> Bool, on connection: Connection
    ) async throws -> Report {
        let stored = try await connection.perform { try PlanStore.load(id, on: $0) }
        try check(stored, now: now())
        let (recordedOutcomes, startedAt) = try await connection.perform { connection in
            try Self.recorded(run: stored.run?.id, on: connection)
        }
        var outcomes = recordedOutcomes
        var application = PlanApplication(
            plan: stored.plan, runStarted: stored.run != nil, recorded: Set(outcomes.keys), certified: stored.run?.finished == true, batchSizes: batchSizes)
        if stored.run?.finished != true {
            let pending = application.pending
            if pending.contains(where: { $0.dataClass == .journal || $0.dataClass == .coldArchives }) {
                guard let journal else {
                    throw RetentionError(.archiveUnavailable, "plan \(id) holds journal months or archives, but no cold archive settings are configured")
                }
                try journal.checkSettings(for: pending)
            }
        }
        var run = stored.run?.id
        var started = startedAt ?? now()
        var certificate: String?
        loop: while true {
            switch application.next() {
            case .finished:
                break loop
            case .startRun:
                if dryRun {
                    application.runStarted()
                    continue
                }
                run = try await connection.transaction { [actor] connection in
                    try connection.query(
                        "INSERT INTO ops.retention_runs (plan_id, started_by, state) VALUES ($1, $2, 'running') RETURNING id, started_at", [id, actor.name]
                    ).rows[0].int64("id")
                }
                started = now()
                application.runStarted()
                logger.notice("retention run started", metadata: ["osmose.retention.plan": "\(id)", "osmose.retention.run": "\(run ?? 0)"])
            case .apply(let batch):
                if stop() { return Report(plan: id, run: run, outcomes: ordered(outcomes, stored), certificateSHA256: nil, interrupted: true) }
                let done = try await applyBatch(batch, plan: stored, run: run, dryRun: dryRun, now: now(), on: connection)
                for outcome in done { outcomes[outcome.key] = outcome }
                guard application.recorded(done.map(\.key)) else {
                    throw RetentionError(.refused, "plan \(id): a batch's outcomes do not match its items (\(done.count) for \(batch.count))")
                }
            case .issueCertificate:
                if dryRun {
                    application.certificateIssued()
                    continue
                }
                guard let run else { throw RetentionError(.refused, "plan \(id) has no run to certify") }
                let document = DispositionCertificate.make(
                    run: run, stored: stored, outcomes: outcomes, appliedBy: actor.name, startedAt: started, finishedAt: now(), policySHA256: policySHA256)
                certificate = try await connection.transaction { [actor] in try Certificates.issue(document, by: actor, on: $0) }
                application.certificateIssued()
                logger.notice("retention run finished", metadata: ["osmose.retention.run": "\(run)", "osmose.retention.certificate": "\(certificate ?? "")"])
            }
        }
        return Report(plan: id, run: run, outcomes: ordered(outcomes, stored), certificateSHA256: certificate, interrupted: false)
    }

    /// Refuses a plan that may not be applied.
    func check(_ stored: StoredPlan, now: Date) throws {
        switch stored.plan.kind {
        case .preview:
            throw RetentionError(.refused, "plan \(stored.id) is a preview for \(stored.plan.asOf): it shows what would be due then and is never applied")
        case .reviewed:
            guard let approval = stored.approval, approval.sha256 == stored.sha256 else {
                throw RetentionError(
                    .refused, "plan \(stored.id) is not approved: the DPO approves it with osmosectl retention approve \(stored.id) --sha256 \(stored.sha256)")
            }
        case .automatic:
            guard stored.plan.items.allSatisfy({ $0.dataClass == .journal && $0.action == .archiveThenPurge }), policy.journal.automatic else {
                throw RetentionError(.refused, "plan \(stored.id) is automatic but holds more than journal months the policy lets the daemon archive alone")
            }
        }
        if stored.run == nil, let computed = rfc3339(stored.plan.computedAt),
            now.timeIntervalSince(computed) > Double(RetentionPlan.validityDays) * 86_400
        {
            throw RetentionError(.refused, "plan \(stored.id) is older than \(RetentionPlan.validityDays) days and was never started: compute and approve a new one")
        }
    }

    /// The outcomes a run recorded, and when it started.
    static func recorded(run: Int64?, on connection: isolated Connection) throws -> ([String: ItemOutcome], Date?) {
        guard let run else { return ([:], nil) }
        let started = try connection.query("SELECT started_at FROM ops.retention_runs WHERE id = $1", [run]).rows[0].date("started_at")
        let rows = try connection.query(
            "SELECT item_key, outcome, detail, values_removed, removed_sha256 FROM ops.retention_run_items WHERE run_id = $1", [run]
        ).rows
        var outcomes: [String: ItemOutcome] = [:]
        for row in rows {
            let key = try row.string("item_key")
            outcomes[key] = ItemOutcome(
                key: key, outcome: ItemOutcome.Outcome(rawValue: try row.string("outcome")) ?? .skipped, detail: try row.string("detail"),
                valuesRemoved: try row.int64("values_removed"), removedSHA256: try row.optionalString("removed_sha256"))
        }
        return (outcomes, started)
    }

    private func ordered(_ outcomes: [String: ItemOutcome], _ stored: StoredPlan) -> [ItemOutcome] {
        stored.plan.items.compactMap { outcomes[$0.key] }
    }

    /// Applies one batch (all of one class) and records its outcomes with it.
    func applyBatch(_ batch: [PlanItem], plan stored: StoredPlan, run: Int64?, dryRun: Bool, now: Date, on connection: Connection) async throws
        -> [ItemOutcome]
    {
        guard let first = batch.first else { return [] }
        switch first.dataClass {
        case .careRecords:
            return try await connection.transaction { connection in
                let outcomes = try pseudonymise(batch, plan: stored.id, dryRun: dryRun, now: now, on: connection)
                if !dryRun, let run { try Self.record(outcomes, run: run, on: connection) }
                return outcomes
            }
        case .sessions:
            return try await connection.transaction { connection in
                let outcomes = try removeSessions(batch, plan: stored.id, dryRun: dryRun, now: now, on: connection)
                if !dryRun, let run { try Self.record(outcomes, run: run, on: connection) }
                return outcomes
            }
        case .subjectRequests:
            // One request per transaction: its content goes with its outcome, or neither.
            var outcomes: [ItemOutcome] = []
            for item in batch {
                let outcome = try await connection.transaction { connection in
                    let outcome = try disposeRequest(item, plan: stored, dryRun: dryRun, now: now, on: connection)
                    if !dryRun, let run { try Self.record([outcome], run: run, on: connection) }
                    return outcome
                }
                outcomes.append(outcome)
            }
            return outcomes
        case .journal, .coldArchives:
            guard let journal else {
                throw RetentionError(.archiveUnavailable, "plan \(stored.id) holds journal months or archives, but no cold archive settings are configured")
            }
            var outcomes: [ItemOutcome] = []
            for item in batch {
                let outcome = try await journal.apply(item, plan: stored.id, policy: policy, actor: actor, dryRun: dryRun, now: now, on: connection)
                if !dryRun, let run { try await connection.transaction { try Self.record([outcome], run: run, on: $0) } }
                outcomes.append(outcome)
            }
            return outcomes
        }
    }

    /// Records outcomes in the caller's transaction.
    static func record(_ outcomes: [ItemOutcome], run: Int64, on connection: isolated Connection) throws {
        guard !outcomes.isEmpty else { return }
        try connection.query(
            """
            INSERT INTO ops.retention_run_items (run_id, item_key, outcome, detail, values_removed, removed_sha256)
            SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])
            """,
            [
                run, arrayLiteral(outcomes.map(\.key)), arrayLiteral(outcomes.map(\.outcome.rawValue)), arrayLiteral(outcomes.map(\.detail)),
                "{" + outcomes.map { String($0.valuesRemoved) }.joined(separator: ",") + "}", arrayLiteral(outcomes.map(\.removedSHA256)),
            ])
    }

    /// Pseudonymises the records of a batch that are still due and not held.
    func pseudonymise(_ batch: [PlanItem], plan: Int64, dryRun: Bool, now: Date, on connection: isolated Connection) throws -> [ItemOutcome] {
        let today = CivilDate(now, in: builder.timeZone)
        let ids = try batch.map { item -> UUID in
            guard let id = UUID(uuidString: item.target) else { throw RetentionError(.planModified, "\(item.key) does not name a patient") }
            return id
        }
        let inputs = Dictionary(uniqueKeysWithValues: try store.clockInputs(of: ids, on: connection).map { ($0.patientID, $0) })
        let (patientHolds, episodeHolds) = builder.spans(of: try LegalHolds.list(all: true, on: connection))
        var outcomes: [String: ItemOutcome] = [:]
        var due: [UUID] = []
        for (item, id) in zip(batch, ids) {
            guard let patient = inputs[id] else {
                outcomes[item.key] = ItemOutcome(key: item.key, outcome: .skipped, detail: "already pseudonymised, or no longer registered")
                continue
            }
            let history = try builder.history(patient, patientHolds: patientHolds, episodeHolds: episodeHolds)
            switch builder.careClock.decision(for: history, on: today).0 {
            case .due: due.append(id)
            case .held(_, let holds):
                outcomes[item.key] = ItemOutcome(key: item.key, outcome: .skipped, detail: "kept by legal hold \(holds.map(String.init).joined(separator: ", "))")
            case .notDue(let term):
                outcomes[item.key] = ItemOutcome(key: item.key, outcome: .skipped, detail: "no longer due: its term is now \(term) (the record changed since the plan)")
            case .never:
                outcomes[item.key] = ItemOutcome(key: item.key, outcome: .skipped, detail: "no longer due: an episode is open")
            }
        }
        let receipts = try store.pseudonymise(due, at: now, pseudonymiser: pseudonymiser, dryRun: dryRun, on: connection)
        var events: [AccessEvent] = []
        for receipt in receipts {
            let key = "care-record/\(receipt.patientID.uuidString.lowercased())"
            let rows = receipt.rows.sorted { $0.key < $1.key }.map { "\($0.key.replacingOccurrences(of: "care.", with: "")) \($0.value)" }.joined(separator: ", ")
            outcomes[key] = ItemOutcome(
                key: key, outcome: .done, detail: "pseudonymised under key \(receipt.keyID) (rows: \(rows))", valuesRemoved: Int64(receipt.valuesRemoved),
                removedSHA256: receipt.removedSHA256)
            events.append(
                AccessEvent.system(
                    by: actor, action: .retentionAdmin, objectType: "care-record", objectID: receipt.patientID.uuidString.lowercased(),
                    patientID: receipt.patientID, reason: "pseudonymised under plan \(plan): \(receipt.valuesRemoved) values removed"))
        }
        for id in due where outcomes["care-record/\(id.uuidString.lowercased())"] == nil {
            let key = "care-record/\(id.uuidString.lowercased())"
            outcomes[key] = ItemOutcome(key: key, outcome: .skipped, detail: "already pseudonymised")
        }
        if !dryRun { try connection.record(events) }
        return batch.map { outcomes[$0.key]! }
    }

    /// Destroys the content of one subject request of the plan, after checking again
    /// that it is closed, not disposed of, past its term and not held (in the caller's
    /// transaction, the request's row locked). Journaled as `retention-admin`.
    func disposeRequest(_ item: PlanItem, plan stored: StoredPlan, dryRun: Bool, now: Date, on connection: isolated Connection) throws -> ItemOutcome {
        guard let number = Int64(item.target), number > 0 else { throw RetentionError(.planModified, "\(item.key) does not name a subject request") }
        guard let approval = stored.approval else {
            throw RetentionError(.refused, "plan \(stored.id) is not approved: subject requests are destroyed only under an approved plan")
        }
        guard policy.subjectRequests != nil else {
            return ItemOutcome(key: item.key, outcome: .skipped, detail: "no longer due: the policy in force sets no subject_requests term")
        }
        let request: RequestDisposal.ClosedRequest
        switch try RequestDisposal.state(of: number, on: connection) {
        case .unknown: return ItemOutcome(key: item.key, outcome: .skipped, detail: "no request has this number")
        case .open: return ItemOutcome(key: item.key, outcome: .skipped, detail: "no longer due: the request was reopened")
        case .disposed(let at): return ItemOutcome(key: item.key, outcome: .skipped, detail: "already disposed of at \(Timestamp.text(at))")
        case .jobPending: return ItemOutcome(key: item.key, outcome: .skipped, detail: "a pack job of the request is queued or running; it is due again in the next plan")
        case .closed(let closed): request = closed
        }
        let (patientHolds, _) = builder.spans(of: try LegalHolds.list(all: true, on: connection))
        switch builder.requestDecision(request, patientHolds: patientHolds, on: CivilDate(now, in: builder.timeZone)) {
        case .notDue(let term):
            return ItemOutcome(key: item.key, outcome: .skipped, detail: "no longer due: its term is now \(term) (the request changed since the plan)")
        case .held(let held):
            return ItemOutcome(
                key: item.key, outcome: .skipped, detail: "kept by legal hold \((held.heldBy ?? []).map(String.init).joined(separator: ", "))")
        case .due:
            break
        }
        let authority = RequestDisposal.Authority(
            planID: stored.id, planSHA256: stored.sha256, approvedBy: approval.approverName, approvedAt: approval.approvedAt)
        let receipt = try RequestDisposal.dispose(request, under: authority, at: now, dryRun: dryRun, on: connection)
        let rows = receipt.rows.sorted { $0.key < $1.key }.map { "\($0.key.replacingOccurrences(of: "dsar.", with: "")) \($0.value)" }.joined(separator: ", ")
        if !dryRun {
            try connection.record(
                AccessEvent.system(
                    by: actor, action: .retentionAdmin, objectType: "subject-request", objectID: String(number), patientID: request.patientID,
                    reason: "content destroyed under plan \(stored.id) (sha256 \(stored.sha256)): \(receipt.valuesRemoved) values removed, sha256 \(receipt.removedSHA256)"))
        }
        return ItemOutcome(
            key: item.key, outcome: .done, detail: "content destroyed, register entry kept (rows: \(rows.isEmpty ? "none" : rows))",
            valuesRemoved: Int64(receipt.valuesRemoved), removedSHA256: receipt.removedSHA256)
    }

    /// Removes the sessions of a batch that still ended before their term.
    func removeSessions(_ batch: [PlanItem], plan: Int64, dryRun: Bool, now: Date, on connection: isolated Connection) throws -> [ItemOutcome] {
        let clock = SessionClock(daysAfterEnd: policy.sessions.daysAfterEnd)
        let hashes = batch.map(\.target)
        let removed: Set<String>
        if dryRun {
            let ended = Set(try SessionRecords.ended(before: clock.endedBefore(now), on: connection).map(\.tokenHash))
            removed = Set(hashes).intersection(ended)
        } else {
            removed = Set(try SessionRecords.remove(hashes, endedBefore: clock.endedBefore(now), on: connection))
            if !removed.isEmpty {
                try connection.record(
                    AccessEvent.system(
                        by: actor, action: .retentionAdmin, objectType: "sessions", objectID: "plan \(plan)",
                        reason: "removed \(removed.count) sessions ended more than \(policy.sessions.daysAfterEnd) days ago under plan \(plan)"))
            }
        }
        return batch.map { item in
            removed.contains(item.target)
                ? ItemOutcome(key: item.key, outcome: .done, detail: "session row removed", valuesRemoved: 1)
                : ItemOutcome(key: item.key, outcome: .skipped, detail: "no longer present, or not past its term")
        }
    }
}

/// A PostgreSQL array literal of texts (NULL for nil), every element quoted.
func arrayLiteral(_ values: [String?]) -> String {
    "{" + values.map { value in
        guard let value else { return "NULL" }
        return "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }.joined(separator: ",") + "}"
}

func arrayLiteral(_ values: [String]) -> String { arrayLiteral(values.map(Optional.some)) }

/// An RFC 3339 time, with or without fractional seconds.
func rfc3339(_ text: String) -> Date? {
    let precise = ISO8601DateFormatter()
    precise.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return precise.date(from: text) ?? ISO8601DateFormatter().date(from: text)
}
