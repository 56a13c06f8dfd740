import CareRecords
public import Foundation
public import Journal
public import Keyring
public import Store

/// The DPO's register of subject requests (schema `dsar`): registering, the
/// identity check, notes, documents, extensions, closing, listing. Every change is
/// a step of the request's evidence file and a journal event with purpose
/// `subject-request`, in the caller's transaction: both commit with the change or
/// not at all.
///
/// Values that are personal data are encrypted with the keyring (`ring`); without
/// it, only what needs no decryption can be done (listing, closing, restricting),
/// and reads leave those values nil.
public struct RequestRegister: Sendable {
    /// Who acts (the DPO running `osmosectl`, or osmose-dsard).
    public let actor: SystemActor
    /// The controller's time zone, in which deadlines fall on calendar days.
    public let timeZone: TimeZone
    let ring: DataKeyRing?

    /// The keyring, when the register was given one.
    public var keyring: DataKeyRing? { ring }

    /// A register acting as `actor`, with the keys of `ring` when given.
    public init(actor: SystemActor, timeZone: TimeZone, ring: DataKeyRing?) {
        self.actor = actor
        self.timeZone = timeZone
        self.ring = ring
    }

    /// The column cipher.
    /// - Throws: ``SubjectRequestError`` `.masterKeyRequired` without the keyring.
    func cipher() throws -> ColumnCipher {
        guard let ring else {
            throw SubjectRequestError(.masterKeyRequired, "this needs the master key: pass --master-key, set dsar.master_key_file, or queue it for osmose-dsard")
        }
        return ColumnCipher(ring: ring)
    }

    /// The care store over the keyring.
    func careStore() throws -> CareStore {
        guard let ring else {
            throw SubjectRequestError(.masterKeyRequired, "this needs the master key: pass --master-key, set dsar.master_key_file, or queue it for osmose-dsard")
        }
        return CareStore(ring: ring)
    }

    // MARK: Registering

    /// Registers a request: matches its subject, computes its deadlines, and records
    /// the first steps of its evidence file.
    /// - Throws: ``SubjectRequestError`` `.unknownPatient`, `.ambiguousPatient`,
    ///   `.patientPseudonymised`, `.unknownStaff`, `.invalidArgument`, `.invalidDate`,
    ///   `.deadlinePast` (unless acknowledged); nothing is written then.
    public func open(_ new: NewRequest, now: Date = Date(), on connection: isolated Connection) throws -> RequestRecord {
        let cipher = try cipher()
        try Self.checkRequester(new)
        guard new.receivedAt <= now.addingTimeInterval(300) else {
            throw SubjectRequestError(.invalidDate, "the request cannot have been received in the future")
        }
        guard new.receivedAt > now.addingTimeInterval(-5 * 366 * 86400) else {
            throw SubjectRequestError(.invalidDate, "a request received more than five years ago cannot be registered as new")
        }
        if let check = new.identityCheck { try Self.checkIdentity(check, receivedAt: new.receivedAt, now: now) }
        let id = UUID()
        var patientID: UUID?
        var staff: (id: UUID, username: String)?
        switch new.subject {
        case .staff(let username):
            guard new.capacity == .staffMember else {
                throw SubjectRequestError(.invalidArgument, "a request about a staff account is made by that staff member (capacity staff-member)")
            }
            staff = try Self.staffAccount(username, on: connection)
        default:
            guard new.capacity != .staffMember else {
                throw SubjectRequestError(.invalidArgument, "a staff member's request is about their own account: name it with --staff")
            }
            patientID = try PatientMatching.match(new.subject, chosen: new.chosenPatient, store: try careStore(), on: connection)
        }
        let receivedOn = CivilDate.on(new.receivedAt, in: timeZone)
        let health = new.healthInformation ?? (patientID != nil)
        let latest = try patientID.map { try PatientMatching.latestInformation(of: $0, on: connection) }.map { CivilDate.on($0, in: timeZone) }
        let facts = DeadlineFacts(
            kind: new.kind, capacity: new.capacity, receivedAt: new.receivedAt, receivedOn: receivedOn, healthInformation: health, latestInformationOn: latest)
        let deadlines = RequestDeadlines.deadlines(for: facts)
        let today = CivilDate.on(now, in: timeZone)
        if let due = RequestDeadlines.effectiveDue(deadlines), due < today, !new.acknowledgeLate {
            throw SubjectRequestError(
                .deadlinePast,
                "this request was due on \(due) (\(deadlines.first { $0.dueOn == due }!.rule.rawValue)), \(due.days(to: today)) day(s) ago: register it with --acknowledge-late to record the delay, and answer at once")
        }
        try connection.query(
            """
            INSERT INTO dsar.requests (id, kind, subject_type, patient_id, staff_user_id, requester_capacity, representation, requester_name,
                requester_contact, received_at, received_on, health_information, latest_information_on, identity_checked_at, identity_checked_by,
                identity_check, late_acknowledged, status, opened_by)
            VALUES ($1, $2, $3, $4::uuid, $5::uuid, $6, $7, $8, $9, $10, $11::date, $12, $13::date, $14, $15, $16, $17, 'open', $18)
            """,
            [
                id, new.kind.rawValue, staff == nil ? "patient" : "staff", patientID, staff?.id, new.capacity.rawValue, new.representation?.rawValue,
                try cipher.encrypt(new.requesterName, for: EncryptedColumn.requestRequesterName.location(rowID: id)),
                try new.requesterContact.map { try cipher.encrypt($0, for: EncryptedColumn.requestRequesterContact.location(rowID: id)) },
                new.receivedAt, receivedOn.description, health, latest?.description, new.identityCheck?.checkedAt, new.identityCheck?.checkedBy,
                try new.identityCheck.map { try cipher.encrypt($0.documents ?? "", for: EncryptedColumn.requestIdentityCheck.location(rowID: id)) },
                new.acknowledgeLate && (RequestDeadlines.effectiveDue(deadlines).map { $0 < today } ?? false), actor.name,
            ])
        try Self.storeDeadlines(deadlines, request: id, on: connection)
        let record = try request(id: id, on: connection)
        var details: [String: String] = [
            "kind": new.kind.rawValue, "capacity": new.capacity.rawValue, "received_at": Self.moment(new.receivedAt),
            "received_on": receivedOn.description, "health_information": String(health), "requester": digest(new.requesterName),
        ]
        details["representation"] = new.representation?.rawValue
        details["patient"] = patientID?.uuidString.lowercased()
        details["staff_account"] = staff?.username
        details["latest_information_on"] = latest?.description
        if record.lateAcknowledged { details["late_acknowledged"] = "true" }
        try EvidenceLog.append(record, kind: "opened", details: details, actor: actor, on: connection)
        try EvidenceLog.append(record, kind: "deadlines-computed", details: Self.details(of: deadlines), actor: actor, on: connection)
        if let check = new.identityCheck { try recordIdentityStep(record, check, on: connection) }
        return record
    }

    /// The requester's capacity and representation agree, and their name is given.
    static func checkRequester(_ new: NewRequest) throws {
        guard (new.capacity == .legalRepresentative) == (new.representation != nil) else {
            throw SubjectRequestError(
                .invalidArgument, "a legal representative says whom they represent (--representation minor or protected-adult), and only they do")
        }
        try checkText(new.requesterName, what: "the requester's name", limit: 200)
        if let contact = new.requesterContact { try checkText(contact, what: "the requester's contact", limit: 500) }
        if new.kind == .portability || new.kind == .objection || new.kind == .erasure || new.kind == .rectification || new.kind == .restriction {
            guard new.capacity != .chosenDoctor else {
                throw SubjectRequestError(.invalidArgument, "a chosen doctor receives health information (CSP L1111-7) but exercises no other right for the patient")
            }
        }
    }

    /// A text that is not empty, bounded in code points, without control characters but line breaks.
    static func checkText(_ text: String, what: String, limit: Int) throws {
        let scalars = text.unicodeScalars
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw SubjectRequestError(.invalidArgument, "\(what) is empty") }
        guard scalars.count <= limit else { throw SubjectRequestError(.invalidArgument, "\(what) is longer than \(limit) characters") }
        guard !scalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" && $0 != "\t" }) else {
            throw SubjectRequestError(.invalidArgument, "\(what) holds control characters")
        }
    }

    static func checkIdentity(_ check: IdentityCheck, receivedAt: Date, now: Date) throws {
        try checkText(check.checkedBy, what: "who checked the identity", limit: 200)
        try checkText(check.documents ?? "", what: "the documents seen", limit: 2000)
        guard check.checkedAt <= now.addingTimeInterval(300) else { throw SubjectRequestError(.invalidDate, "the identity check cannot be in the future") }
        guard check.checkedAt >= receivedAt.addingTimeInterval(-30 * 86400) else {
            throw SubjectRequestError(.invalidDate, "the identity check is dated more than 30 days before the request was received")
        }
    }

    static func staffAccount(_ username: String, on connection: isolated Connection) throws -> (id: UUID, username: String) {
        guard let row = try connection.query("SELECT id, username FROM care.users WHERE username = $1", [username]).singleRow() else {
            throw SubjectRequestError(.unknownStaff, "no staff account is named \(username.unicodeScalars.count <= 64 ? username : "that")")
        }
        return (try row.uuid("id"), try row.string("username"))
    }

    static func storeDeadlines(_ deadlines: [Deadline], request: UUID, on connection: isolated Connection) throws {
        for deadline in deadlines {
            try connection.query(
                """
                INSERT INTO dsar.deadlines (request_id, rule, earliest_at, due_on, citation, in_force) VALUES ($1, $2, $3, $4::date, $5, $6)
                ON CONFLICT (request_id, rule) DO UPDATE SET earliest_at = EXCLUDED.earliest_at, due_on = EXCLUDED.due_on, in_force = EXCLUDED.in_force
                """,
                [request, deadline.rule.rawValue, deadline.earliest, deadline.dueOn?.description, deadline.rule.citation, deadline.inForce])
        }
    }

    static func details(of deadlines: [Deadline]) -> [String: String] {
        var details: [String: String] = [:]
        for deadline in deadlines {
            details[deadline.rule.rawValue] = (deadline.dueOn?.description ?? deadline.earliest.map(moment) ?? "") + (deadline.inForce ? "" : " (superseded)")
        }
        return details
    }

    /// RFC 3339 with microseconds, UTC.
    static func moment(_ date: Date) -> String { JournalEntry.rfc3339(microseconds: Int64((date.timeIntervalSince1970 * 1_000_000).rounded())) }

    // MARK: Reading

    /// The request numbered `number`.
    /// - Throws: ``SubjectRequestError`` `.unknownRequest`.
    public func request(number: Int64, on connection: isolated Connection) throws -> RequestRecord {
        guard let row = try connection.query("\(Self.selectRequest) WHERE r.number = $1", [number]).singleRow() else {
            throw SubjectRequestError(.unknownRequest, "no subject request has number \(number)")
        }
        return try record(from: row, on: connection)
    }

    /// The request with internal id `id`.
    public func request(id: UUID, on connection: isolated Connection) throws -> RequestRecord {
        guard let row = try connection.query("\(Self.selectRequest) WHERE r.id = $1", [id]).singleRow() else {
            throw SubjectRequestError(.unknownRequest, "no subject request has id \(id)")
        }
        return try record(from: row, on: connection)
    }

    /// The request numbered `number`, locked for the caller's transaction, and open.
    /// - Throws: ``SubjectRequestError`` `.unknownRequest`, `.closed`.
    func openRequest(number: Int64, on connection: isolated Connection) throws -> RequestRecord {
        try connection.query("SELECT 1 FROM dsar.requests WHERE number = $1 FOR UPDATE", [number])
        let record = try request(number: number, on: connection)
        guard record.isOpen else {
            throw SubjectRequestError(.closed, "request \(number) was closed on \(record.closedAt.map(Self.moment) ?? "?") (\(record.outcome?.rawValue ?? "?"))")
        }
        return record
    }

    private static let selectRequest = """
        SELECT r.*, u.username AS staff_username FROM dsar.requests r LEFT JOIN care.users u ON u.id = r.staff_user_id
        """

    private func record(from row: Row, on connection: isolated Connection) throws -> RequestRecord {
        let id = try row.uuid("id")
        let cipher = ring.map(ColumnCipher.init(ring:))
        func open(_ column: EncryptedColumn) throws -> String? {
            guard let cipher, let stored = try row.optionalBytes(column.column) else { return nil }
            return try cipher.decryptString(stored, at: column.location(rowID: id))
        }
        func decode<Value: RawRepresentable>(_ column: String) throws -> Value where Value.RawValue == String {
            guard let value = Value(rawValue: try row.string(column)) else { throw SubjectRequestError(.internalError, "stored \(column) is not valid") }
            return value
        }
        let deadlines = try connection.query(
            "SELECT rule, earliest_at, due_on::text AS due_on, in_force FROM dsar.deadlines WHERE request_id = $1", [id]
        ).rows.map { deadline in
            Deadline(
                rule: try decodeRule(try deadline.string("rule")), earliest: try deadline.optionalDate("earliest_at"),
                dueOn: try deadline.optionalString("due_on").map { try CivilDate(parsing: $0) }, inForce: try deadline.bool("in_force"))
        }.sorted { DeadlineRule.allCases.firstIndex(of: $0.rule)! < DeadlineRule.allCases.firstIndex(of: $1.rule)! }
        var identity: IdentityCheck?
        if let checkedAt = try row.optionalDate("identity_checked_at") {
            identity = IdentityCheck(checkedBy: try row.string("identity_checked_by"), checkedAt: checkedAt, documents: try open(.requestIdentityCheck))
        }
        return RequestRecord(
            id: id, number: try row.int64("number"), kind: try decode("kind"), patientID: try row.isNull("patient_id") ? nil : try row.uuid("patient_id"),
            staffUsername: try row.optionalString("staff_username"), capacity: try decode("requester_capacity"),
            representation: try row.optionalString("representation").flatMap(Representation.init(rawValue:)), requesterName: try open(.requestRequesterName),
            requesterContact: try open(.requestRequesterContact), receivedAt: try row.date("received_at"),
            receivedOn: try CivilDate(parsing: try row.string("received_on")), healthInformation: try row.bool("health_information"),
            latestInformationOn: try row.optionalString("latest_information_on").map { try CivilDate(parsing: $0) }, identityCheck: identity,
            extensionNoticeOn: try row.optionalString("extension_notice_on").map { try CivilDate(parsing: $0) },
            lateAcknowledged: try row.bool("late_acknowledged"), status: try row.string("status"),
            outcome: try row.optionalString("outcome").flatMap(RequestOutcome.init(rawValue:)), closedAt: try row.optionalDate("closed_at"),
            disposal: try row.optionalDate("disposed_at").map { at in
                RequestRecord.Disposal(
                    at: at, planID: try row.int64("disposal_plan_id"), planSHA256: try row.string("disposal_plan_sha256"),
                    approvedBy: try row.string("disposal_approved_by"), approvedAt: try row.date("disposal_approved_at"))
            }, openedAt: try row.date("opened_at"), openedBy: try row.string("opened_by"), deadlines: deadlines)
    }

    private func decodeRule(_ text: String) throws -> DeadlineRule {
        guard let rule = DeadlineRule(rawValue: text) else { throw SubjectRequestError(.internalError, "stored deadline rule \(text) is not known") }
        return rule
    }

    /// The columns that ``summary(from:today:)`` reads, from `dsar.requests r`.
    static let summaryColumns = """
        r.number, r.kind, r.requester_capacity, r.received_on::text AS received_on, r.status, r.outcome, r.patient_id,
        r.identity_checked_at IS NOT NULL AS identity_checked, r.due_on::text AS due_on, r.disposed_at IS NOT NULL AS disposed
        """

    /// A register line from a row of ``summaryColumns``: the days left count from
    /// `today`, for open requests only.
    static func summary(from row: Row, today: CivilDate) throws -> RequestSummary {
        let due = try row.optionalString("due_on").map { try CivilDate(parsing: $0) }
        let open = try row.string("status") == "open"
        guard let kind = RequestKind(rawValue: try row.string("kind")), let capacity = RequesterCapacity(rawValue: try row.string("requester_capacity"))
        else { throw SubjectRequestError(.internalError, "stored request kind or capacity is not valid") }
        return RequestSummary(
            number: try row.int64("number"), kind: kind, capacity: capacity, receivedOn: try CivilDate(parsing: try row.string("received_on")),
            status: try row.string("status"), outcome: try row.optionalString("outcome").flatMap(RequestOutcome.init(rawValue:)), dueOn: due,
            daysLeft: open ? due.map { today.days(to: $0) } : nil, identityChecked: try row.bool("identity_checked"),
            patientID: try row.isNull("patient_id") ? nil : try row.uuid("patient_id"), disposed: try row.bool("disposed"))
    }

    /// The register: open requests by due day, or every request, newest first.
    /// - Parameters:
    ///   - openOnly: only requests still open.
    ///   - dueWithin: only open requests due within this many days (or past due).
    ///   - now: today, for the days left.
    public func list(openOnly: Bool, dueWithin: Int?, now: Date = Date(), on connection: isolated Connection) throws -> [RequestSummary] {
        let rows = try connection.query(
            """
            SELECT \(Self.summaryColumns)
            FROM dsar.requests r WHERE NOT $1 OR r.status = 'open' ORDER BY r.number DESC
            """, [openOnly || dueWithin != nil]
        ).rows
        let today = CivilDate.on(now, in: timeZone)
        let summaries = try rows.map { try Self.summary(from: $0, today: today) }
        guard let within = dueWithin else { return summaries }
        return summaries.filter { ($0.daysLeft ?? Int.max) <= within }.sorted { ($0.daysLeft ?? 0, $0.number) < ($1.daysLeft ?? 0, $1.number) }
    }

    /// Which requests a page of the register shows (``page(_:offset:limit:warnDays:now:on:)``).
    public struct RegisterFilter: Sendable, Hashable {
        /// Open requests, closed ones, or every request.
        public enum Status: String, Sendable, Hashable, CaseIterable { case open, closed, all }
        public var status: Status
        /// Only requests of this kind, when given.
        public var kind: RequestKind?
        /// Only open requests due within this many days (or past due), by due day then
        /// number; otherwise newest first.
        public var dueWithin: Int?

        public init(status: Status = .open, kind: RequestKind? = nil, dueWithin: Int? = nil) {
            self.status = status
            self.kind = kind
            self.dueWithin = dueWithin
        }
    }

    /// One page of the register, with the counts over every request the filter keeps.
    public struct RegisterPage: Sendable, Hashable {
        /// The page's requests, in the register's order.
        public let rows: [RequestSummary]
        /// Requests the filter keeps, on every page.
        public let total: Int
        /// Of those, open requests past their due day.
        public let overdue: Int
        /// Of those, open requests due today or within `warnDays` days.
        public let dueSoon: Int
        /// Rows skipped before this page.
        public let offset: Int
    }

    /// The longest page ``page(_:offset:limit:warnDays:now:on:)`` returns.
    public static let registerPageLimit = 500

    /// A page of the register: `limit` requests from `offset`, in the order of
    /// ``list(openOnly:dueWithin:now:on:)`` (by due day then number with `dueWithin`,
    /// newest first otherwise), and the counts over every request the filter keeps.
    /// Two queries on the requests alone (their `due_on`, kept from the deadlines by
    /// a trigger): the page (cut through the `number` index, or, with `dueWithin`, the
    /// first `offset + limit` open requests by due day, kept by a top-N sort), and the counts.
    /// - Throws: ``SubjectRequestError`` `.invalidArgument` for a negative offset, a
    ///   limit outside 1…``registerPageLimit``, or a negative window.
    public func page(
        _ filter: RegisterFilter, offset: Int, limit: Int, warnDays: Int, now: Date = Date(), on connection: isolated Connection
    ) throws -> RegisterPage {
        guard offset >= 0, offset <= Int(Int32.max) else { throw SubjectRequestError(.invalidArgument, "the register's page offset must be 0 or more") }
        guard (1...Self.registerPageLimit).contains(limit) else {
            throw SubjectRequestError(.invalidArgument, "the register's page size must be between 1 and \(Self.registerPageLimit)")
        }
        guard (filter.dueWithin ?? 0) >= 0, (filter.dueWithin ?? 0) <= 36500, warnDays >= 0, warnDays <= 36500 else {
            throw SubjectRequestError(.invalidArgument, "the register's due window must be between 0 and 36500 days")
        }
        let today = CivilDate.on(now, in: timeZone)
        let status: String? = switch filter.status {
        case .open: "open"
        case .closed: "closed"
        case .all: nil
        }
        let horizon = filter.dueWithin.map { today.adding(days: $0).description }
        // The due day is the request's `due_on`: the earliest deadline in force, kept
        // by a trigger on the deadlines (migration 0049), so the page and the counts
        // each read one table (10,000 requests: ~2 ms each).
        let kept = "($1::text IS NULL OR r.status = $1) AND ($2::text IS NULL OR r.kind = $2)"
        let columns = Self.summaryColumns
        let rows: [Row]
        if let horizon {
            rows = try connection.query(
                """
                SELECT \(columns) FROM dsar.requests r
                WHERE \(kept) AND r.status = 'open' AND r.due_on <= $3::date ORDER BY r.due_on, r.number LIMIT $4 OFFSET $5
                """, [status, filter.kind?.rawValue, horizon, Int64(limit), Int64(offset)]
            ).rows
        } else {
            rows = try connection.query(
                "SELECT \(columns) FROM dsar.requests r WHERE \(kept) ORDER BY r.number DESC LIMIT $3 OFFSET $4",
                [status, filter.kind?.rawValue, Int64(limit), Int64(offset)]
            ).rows
        }
        let counts = try connection.query(
            """
            SELECT count(*) AS total, count(*) FILTER (WHERE r.status = 'open' AND r.due_on < $3::date) AS overdue,
                   count(*) FILTER (WHERE r.status = 'open' AND r.due_on BETWEEN $3::date AND $4::date) AS soon
            FROM dsar.requests r
            WHERE \(kept) AND ($5::date IS NULL OR (r.status = 'open' AND r.due_on <= $5::date))
            """, [status, filter.kind?.rawValue, today.description, today.adding(days: warnDays).description, horizon]
        ).rows[0]
        let summaries = try rows.map { try Self.summary(from: $0, today: today) }
        return RegisterPage(rows: summaries, total: try counts.int("total"), overdue: try counts.int("overdue"), dueSoon: try counts.int("soon"), offset: offset)
    }

    // MARK: Changes

    /// Records the identity check.
    /// - Throws: ``SubjectRequestError`` `.notReady` when one was already recorded.
    public func checkIdentity(number: Int64, _ check: IdentityCheck, now: Date = Date(), on connection: isolated Connection) throws -> RequestRecord {
        let cipher = try cipher()
        let record = try openRequest(number: number, on: connection)
        guard record.identityCheck == nil else {
            throw SubjectRequestError(.notReady, "the identity check of request \(number) is already recorded; add a note to complete it")
        }
        try Self.checkIdentity(check, receivedAt: record.receivedAt, now: now)
        try connection.query(
            "UPDATE dsar.requests SET identity_checked_at = $2, identity_checked_by = $3, identity_check = $4 WHERE id = $1",
            [record.id, check.checkedAt, check.checkedBy, try cipher.encrypt(check.documents ?? "", for: EncryptedColumn.requestIdentityCheck.location(rowID: record.id))])
        try recordIdentityStep(record, check, on: connection)
        return try request(id: record.id, on: connection)
    }

    private func recordIdentityStep(_ record: RequestRecord, _ check: IdentityCheck, on connection: isolated Connection) throws {
        try EvidenceLog.append(
            record, kind: "identity-checked",
            details: ["checked_by": check.checkedBy, "checked_at": Self.moment(check.checkedAt), "documents": digest(check.documents ?? "")],
            actor: actor, on: connection)
    }

    /// Adds a note to the request's file.
    public func addNote(number: Int64, _ text: String, kind: String = "note", on connection: isolated Connection) throws -> UUID {
        let cipher = try cipher()
        try Self.checkText(text, what: "the note", limit: 20_000)
        let record = try request(number: number, on: connection)
        let id = UUID()
        try connection.query(
            "INSERT INTO dsar.notes (id, request_id, kind, body, written_by) VALUES ($1, $2, $3, $4, $5)",
            [id, record.id, kind, try cipher.encrypt(text, for: EncryptedColumn.requestNoteBody.location(rowID: id)), actor.name])
        try EvidenceLog.append(
            record, kind: kind == "note" ? "note-added" : kind, details: ["note": id.uuidString.lowercased(), "text": digest(text)], actor: actor,
            on: connection)
        return id
    }

    /// The notes of a request, oldest first: (kind, when, who, text).
    public func notes(number: Int64, on connection: isolated Connection) throws -> [RequestNote] {
        let cipher = try cipher()
        let record = try request(number: number, on: connection)
        return try connection.query(
            "SELECT id, kind, body, written_at, written_by FROM dsar.notes WHERE request_id = $1 ORDER BY written_at, id", [record.id]
        ).rows.map { row in
            let id = try row.uuid("id")
            return RequestNote(
                id: id, kind: try row.string("kind"), writtenAt: try row.date("written_at"), writtenBy: try row.string("written_by"),
                text: try cipher.decryptString(try row.bytes("body"), at: EncryptedColumn.requestNoteBody.location(rowID: id)))
        }
    }

    /// The largest document accepted.
    public static let maximumDocumentBytes = 32 << 20

    /// Attaches a document received with the request, encrypted (never in clear on disk).
    /// - Returns: its id and digest.
    public func attach(
        number: Int64, fileName: String, mediaType: String, content: [UInt8], on connection: isolated Connection
    ) throws -> (id: UUID, sha256: String) {
        let cipher = try cipher()
        try Self.checkText(fileName, what: "the file name", limit: 255)
        guard mediaType.range(of: "^[a-z0-9.+-]+/[a-z0-9.+-]+$", options: .regularExpression) != nil else {
            throw SubjectRequestError(.invalidArgument, "the media type must look like application/pdf or image/jpeg")
        }
        guard content.count <= Self.maximumDocumentBytes else {
            throw SubjectRequestError(.invalidArgument, "a document is at most \(Self.maximumDocumentBytes >> 20) MiB")
        }
        let record = try request(number: number, on: connection)
        let id = UUID()
        let sum = digest(content)
        try connection.query(
            "INSERT INTO dsar.documents (id, request_id, file_name, media_type, size, sha256, content, attached_by) VALUES ($1, $2, $3, $4, $5, decode($6, 'hex'), $7, $8)",
            [
                id, record.id, try cipher.encrypt(fileName, for: EncryptedColumn.requestDocumentName.location(rowID: id)), mediaType, content.count,
                String(sum.dropFirst(7)), try cipher.encrypt(content, for: EncryptedColumn.requestDocumentContent.location(rowID: id)), actor.name,
            ])
        try EvidenceLog.append(
            record, kind: "document-attached",
            details: ["document": id.uuidString.lowercased(), "media_type": mediaType, "size": String(content.count), "content": sum, "name": digest(fileName)],
            actor: actor, on: connection)
        return (id, sum)
    }

    /// The documents of a request (without their content).
    public func documents(number: Int64, on connection: isolated Connection) throws -> [RequestDocument] {
        let cipher = try cipher()
        let record = try request(number: number, on: connection)
        return try connection.query(
            "SELECT id, file_name, media_type, size, encode(sha256, 'hex') AS sha256, attached_at, attached_by FROM dsar.documents WHERE request_id = $1 ORDER BY attached_at, id",
            [record.id]
        ).rows.map { row in
            let id = try row.uuid("id")
            return RequestDocument(
                id: id, fileName: try cipher.decryptString(try row.bytes("file_name"), at: EncryptedColumn.requestDocumentName.location(rowID: id)),
                mediaType: try row.string("media_type"), size: try row.int("size"), sha256: "sha256:" + (try row.string("sha256")),
                attachedAt: try row.date("attached_at"), attachedBy: try row.string("attached_by"))
        }
    }

    /// A document's content, decrypted and checked against its digest; its reading is journaled.
    public func documentContent(number: Int64, document: UUID, on connection: isolated Connection) throws -> [UInt8] {
        let cipher = try cipher()
        let record = try request(number: number, on: connection)
        guard let row = try connection.query(
            "SELECT content, encode(sha256, 'hex') AS sha256 FROM dsar.documents WHERE id = $1 AND request_id = $2", [document, record.id]
        ).singleRow() else { throw SubjectRequestError(.invalidArgument, "request \(number) has no document \(document)") }
        let content = try cipher.decrypt(try row.bytes("content"), at: EncryptedColumn.requestDocumentContent.location(rowID: document))
        guard digest(content) == "sha256:" + (try row.string("sha256")) else {
            throw SubjectRequestError(.internalError, "document \(document) does not match its recorded digest")
        }
        try connection.record(
            AccessEvent.system(
                by: actor, action: .read, objectType: "subject-request-document", objectID: document.uuidString.lowercased(), patientID: record.patientID,
                purpose: .subjectRequest))
        return content
    }

    /// Extends the GDPR deadline by two months, with the reasoned notice sent to the
    /// requester on `noticeOn` (GDPR art. 12(3)).
    /// - Throws: ``SubjectRequestError`` `.extensionTooLate` after the first month.
    public func extend(number: Int64, noticeOn: CivilDate, reasons: String, on connection: isolated Connection) throws -> RequestRecord {
        let record = try openRequest(number: number, on: connection)
        try RequestDeadlines.checkExtension(notice: noticeOn, facts: record.deadlineFacts)
        guard noticeOn <= CivilDate.on(Date(), in: timeZone) else {
            throw SubjectRequestError(.invalidDate, "the extension notice cannot be dated in the future (\(noticeOn))")
        }
        var facts = record.deadlineFacts
        facts.extensionNoticeOn = noticeOn
        let deadlines = RequestDeadlines.deadlines(for: facts)
        try connection.query("UPDATE dsar.requests SET extension_notice_on = $2::date WHERE id = $1", [record.id, noticeOn.description])
        try Self.storeDeadlines(deadlines, request: record.id, on: connection)
        _ = try addNote(number: number, reasons, kind: "extension-notice", on: connection)
        let updated = try request(id: record.id, on: connection)
        try EvidenceLog.append(
            updated, kind: "deadline-extended",
            details: Self.details(of: deadlines).merging(["notice_on": noticeOn.description, "reasons": digest(reasons)]) { first, _ in first },
            actor: actor, on: connection)
        if RequestDeadlines.cspApplies(facts) {
            // The CSP deadline is not extended: record that the effective day did not move.
            try EvidenceLog.append(
                updated, kind: "note-added", details: ["effective_due_on": updated.dueOn?.description ?? "", "csp_deadline_unchanged": "true"], actor: actor,
                on: connection)
        }
        return updated
    }

    /// Closes the request with `outcome`.
    /// - Throws: ``SubjectRequestError`` `.identityNotChecked` when granting without
    ///   an identity check; `.notReady` when an access is granted before its pack was released.
    public func close(number: Int64, outcome: RequestOutcome, on connection: isolated Connection) throws -> RequestRecord {
        let record = try openRequest(number: number, on: connection)
        if outcome == .granted || outcome == .partiallyGranted {
            guard record.identityCheck != nil else {
                throw SubjectRequestError(.identityNotChecked, "request \(number) cannot be granted before the requester's identity is checked (osmosectl dsar identity)")
            }
            if record.kind == .access {
                let released = try connection.query("SELECT 1 FROM dsar.packs WHERE request_id = $1 AND released_at IS NOT NULL", [record.id]).rows
                guard !released.isEmpty else {
                    throw SubjectRequestError(.notReady, "access request \(number) is granted once its pack is released (osmosectl dsar export)")
                }
            }
        }
        try connection.query("UPDATE dsar.requests SET status = 'closed', outcome = $2, closed_at = clock_timestamp() WHERE id = $1", [record.id, outcome.rawValue])
        let closed = try request(id: record.id, on: connection)
        let today = CivilDate.on(closed.closedAt ?? Date(), in: timeZone)
        var details = ["outcome": outcome.rawValue]
        if let due = record.dueOn {
            details["due_on"] = due.description
            details["answered_within_deadline"] = String(today <= due)
        }
        try EvidenceLog.append(closed, kind: "closed", details: details, actor: actor, on: connection)
        return closed
    }
}

/// A note of a request's file.
public struct RequestNote: Sendable, Hashable, Codable {
    public let id: UUID
    /// `note`, `extension-notice` or `answer`.
    public let kind: String
    public let writtenAt: Date
    public let writtenBy: String
    public let text: String
}

/// A document of a request's file (its content is read separately).
public struct RequestDocument: Sendable, Hashable, Codable {
    public let id: UUID
    public let fileName: String
    public let mediaType: String
    public let size: Int
    public let sha256: String
    public let attachedAt: Date
    public let attachedBy: String
}
