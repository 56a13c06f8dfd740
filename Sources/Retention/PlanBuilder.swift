import CareRecords
public import Foundation
public import Keyring
public import Settings
public import Journal
public import Store
import SubjectRequests

/// Computes what retention would do as of a day, item by item, from the database
/// as it stands (one consistent snapshot) and the clocks.
public struct PlanBuilder: Sendable {
    let policy: RetentionPolicy
    let policySHA256: String
    let store: CareStore
    let journal: (any JournalMonthRetention)?

    /// A builder for `policy`, decrypting the care records' dates with the keys of `ring`.
    /// - Parameters:
    ///   - policy: the retention policy.
    ///   - policySHA256: the SHA-256 of the policy file, recorded in the plan.
    ///   - ring: the data keys (birth dates and dates of death are encrypted).
    ///   - journal: the journal months and their archives; nil leaves them out of the plan.
    public init(policy: RetentionPolicy, policySHA256: String, ring: DataKeyRing, journal: (any JournalMonthRetention)? = nil) {
        self.policy = policy
        self.policySHA256 = policySHA256
        store = CareStore(ring: ring)
        self.journal = journal
    }

    /// The care records' clock.
    var careClock: CareRecordClock { CareRecordClock(rules: policy.careRecords) }
    /// The hospital's time zone, in which dates of care become days.
    var timeZone: TimeZone { TimeZone(identifier: policy.careRecords.timeZone) ?? TimeZone(identifier: "UTC")! }

    /// The plan as of `asOf`.
    /// - Parameters:
    ///   - kind: `reviewed` for today, `preview` for a later day, `automatic` for the daemon's own (journal months only).
    ///   - asOf: the day the terms are compared with.
    ///   - now: when it is computed.
    ///   - connection: read in one repeatable-read transaction.
    public func plan(kind: RetentionPlan.Kind, asOf: CivilDate, now: Date = Date(), on connection: Connection) async throws -> RetentionPlan {
        // The care records, sessions and holds from one snapshot. Every hold goes to
        // the clocks, which keep only those in force on the day asked about.
        let (care, kept, sessions, holds) = try await connection.transaction(isolation: .repeatableRead) { connection in
            let holds = try LegalHolds.list(all: true, on: connection)
            guard kind != .automatic else { return ([PlanItem](), [PlanItem](), [PlanItem](), holds) }
            let (due, kept) = try careItems(asOf: asOf, holds: holds, on: connection)
            let (requests, requestsKept) = try requestItems(asOf: asOf, holds: holds, on: connection)
            return (due + requests, kept + requestsKept, try sessionItems(asOf: asOf, on: connection), holds)
        }
        var items = care + sessions
        var held = kept
        if let journal {
            let months = try await journal.plan(asOf: asOf, policy: policy, holds: holds, includeArchives: kind != .automatic, on: connection)
            items += months.due
            held += months.held
        }
        return RetentionPlan(kind: kind, asOf: asOf, computedAt: now, policySHA256: policySHA256, items: items, held: held)
    }

    /// The care records due as of `asOf`, and those holds keep.
    func careItems(asOf: CivilDate, holds: [LegalHold], on connection: isolated Connection) throws -> (due: [PlanItem], held: [PlanItem]) {
        let (patientHolds, episodeHolds) = spans(of: holds)
        var due: [PlanItem] = []
        var kept: [PlanItem] = []
        var after: UUID?
        while true {
            let page = try store.clockInputs(after: after, limit: 5000, on: connection)
            guard let last = page.last else { break }
            after = last.patientID
            for inputs in page {
                let (decision, term) = careClock.decision(for: try history(inputs, patientHolds: patientHolds, episodeHolds: episodeHolds), on: asOf)
                switch decision {
                case .due(let dueOn): due.append(careItem(inputs.patientID, term: term, dueOn: dueOn, heldBy: nil))
                case .held(let dueOn, let by): kept.append(careItem(inputs.patientID, term: term, dueOn: dueOn, heldBy: by))
                case .notDue, .never: break
                }
            }
        }
        return (due, kept)
    }

    /// The holds' spans by patient and by episode.
    func spans(of holds: [LegalHold]) -> (patients: [UUID: [HoldSpan]], episodes: [UUID: [HoldSpan]]) {
        var patients: [UUID: [HoldSpan]] = [:]
        var episodes: [UUID: [HoldSpan]] = [:]
        for hold in holds {
            switch hold.subject {
            case .patient(let id): patients[id, default: []].append(hold.span(in: timeZone))
            case .episode(let id): episodes[id, default: []].append(hold.span(in: timeZone))
            case .journalPeriod: break
            }
        }
        return (patients, episodes)
    }

    /// A patient's clock history, with the holds naming the patient or one of its episodes.
    func history(_ inputs: PatientClockInputs, patientHolds: [UUID: [HoldSpan]], episodeHolds: [UUID: [HoldSpan]]) throws -> CareRecordClock.History {
        CareRecordClock.History(
            birthDate: try CivilDate(parsing: inputs.birthDate), registeredOn: CivilDate(inputs.registeredAt, in: timeZone),
            lastEpisodeEnd: inputs.lastEpisodeEnd.map { CivilDate($0, in: timeZone) }, hasOpenEpisode: inputs.openEpisodes > 0,
            dateOfDeath: try inputs.dateOfDeath.map(CivilDate.init(parsing:)),
            holds: (patientHolds[inputs.patientID] ?? []) + inputs.episodeIDs.flatMap { episodeHolds[$0] ?? [] })
    }

    func careItem(_ patient: UUID, term: CareRecordClock.Term, dueOn: CivilDate, heldBy: [Int64]?) -> PlanItem {
        PlanItem(
            key: "care-record/\(patient.uuidString.lowercased())", dataClass: .careRecords, action: .pseudonymise, rule: Self.ruleText(term.rule, policy.careRecords),
            basis: term.basis, dueOn: dueOn, heldBy: heldBy)
    }

    /// The rule of a care term in words, with its policy setting.
    static func ruleText(_ rule: CareRecordClock.Rule, _ care: RetentionPolicy.CareRecords) -> String {
        switch rule {
        case .lastEpisode: "R1112-7: \(care.yearsAfterLastEpisode) years after the last care episode (care_records.years_after_last_episode)"
        case .registration: "R1112-7: \(care.yearsAfterLastEpisode) years after registration, no episode (care_records.years_after_last_episode)"
        case .untilAge: "R1112-7: until the \(care.untilAge)th birthday (care_records.until_age)"
        case .afterDeath:
            "R1112-7: \(care.yearsAfterDeath) years after a death within \(care.deathWithinYears) years of the last episode (care_records.years_after_death)"
        case .openEpisode: "an open episode never expires"
        }
    }

    /// The closed subject requests whose term (`subject_requests.years_after_closure`
    /// after the day, in the hospital's time zone, they were closed) has come by
    /// `asOf`, and those a hold naming their patient keeps. Open requests never
    /// expire; nothing is listed when the policy has no `subject_requests` class.
    func requestItems(asOf: CivilDate, holds: [LegalHold], on connection: isolated Connection) throws -> (due: [PlanItem], held: [PlanItem]) {
        guard policy.subjectRequests != nil else { return ([], []) }
        let (patientHolds, _) = spans(of: holds)
        var due: [PlanItem] = []
        var kept: [PlanItem] = []
        for request in try RequestDisposal.closedRequests(on: connection) {
            switch requestDecision(request, patientHolds: patientHolds, on: asOf) {
            case .due(let item): due.append(item)
            case .held(let item): kept.append(item)
            case .notDue: break
            }
        }
        return (due, kept)
    }

    /// Where a closed request stands on a day.
    enum RequestDecision {
        case due(PlanItem)
        case held(PlanItem)
        case notDue(CivilDate)
    }

    /// A closed request's term on `day`, with the holds in force that day naming its patient.
    func requestDecision(_ request: RequestDisposal.ClosedRequest, patientHolds: [UUID: [HoldSpan]], on day: CivilDate) -> RequestDecision {
        let years = policy.subjectRequests?.yearsAfterClosure ?? 0
        let closed = CivilDate(request.closedAt, in: timeZone)
        let term = closed.adding(years: years)
        guard term <= day else { return .notDue(term) }
        let holding = (request.patientID.flatMap { patientHolds[$0] } ?? []).filter { $0.isActive(on: day) }.map(\.id).sorted()
        let item = PlanItem(
            key: "subject-request/\(request.number)", dataClass: .subjectRequests, action: .destroy,
            rule: "\(years) years after the request was closed (subject_requests.years_after_closure)", basis: ["closed": closed], dueOn: term,
            heldBy: holding.isEmpty ? nil : holding)
        return holding.isEmpty ? .due(item) : .held(item)
    }

    /// The sessions that ended `days_after_end` days before the start of `asOf` (UTC).
    func sessionItems(asOf: CivilDate, on connection: isolated Connection) throws -> [PlanItem] {
        let clock = SessionClock(daysAfterEnd: policy.sessions.daysAfterEnd)
        let ended = try SessionRecords.ended(before: clock.endedBefore(asOf.startUTC), on: connection)
        return ended.map { session in
            PlanItem(
                key: "session/\(session.tokenHash)", dataClass: .sessions, action: .destroy,
                rule: "\(policy.sessions.daysAfterEnd) days after the session ended (sessions.days_after_end)",
                basis: ["ended": CivilDate(utc: session.endedAt)], dueOn: CivilDate(utc: clock.due(endedAt: session.endedAt)))
        }
    }
}

/// The journal months and their cold archives, as a plan sees them: what is due to
/// be archived and purged, and which archives are due to be destroyed.
public protocol JournalMonthRetention: Sendable {
    /// The journal items due as of `asOf` and those held.
    /// - Parameter includeArchives: whether archives past their term are listed (not in automatic plans: destruction needs approval).
    func plan(asOf: CivilDate, policy: RetentionPolicy, holds: [LegalHold], includeArchives: Bool, on connection: Connection) async throws
        -> (due: [PlanItem], held: [PlanItem])

    /// Refuses, before anything is changed, to apply `items` when the cold archive
    /// settings cannot handle them (a missing archive directory, no recipient).
    /// - Throws: ``RetentionError/Code/archiveUnavailable`` naming the setting.
    func checkSettings(for items: [PlanItem]) throws

    /// Applies one journal item of plan `plan` (archive then purge a month, or destroy
    /// an archive) after checking it again; idempotent, so that a run resumed after a
    /// crash finishes what a killed one began. Journals what it does.
    func apply(_ item: PlanItem, plan: Int64, policy: RetentionPolicy, actor: SystemActor, dryRun: Bool, now: Date, on connection: Connection) async throws
        -> ItemOutcome
}

extension JournalMonthRetention {
    /// No settings to check, unless the implementation says otherwise.
    public func checkSettings(for items: [PlanItem]) throws {}
}
