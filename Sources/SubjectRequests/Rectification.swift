import CareRecords
public import Foundation
import Journal
public import Keyring
public import Store

/// Someone who read a value between its writing and its rectification: whom
/// GDPR art. 19 asks the controller to notify of the rectification.
public struct Recipient: Sendable, Hashable, Codable {
    /// The user's id, when the journal has it.
    public let userID: String?
    /// The login name.
    public let username: String?
    /// The role and team when reading.
    public let role: String?
    public let team: String?
    /// How many reads or exports.
    public let reads: Int
    /// The first and last of them (RFC 3339, UTC).
    public let firstRead: String
    public let lastRead: String
    /// The rectified fields whose old value they may have seen.
    public let fields: [String]
}

/// A rectification applied, and its recipients once the journal had them.
public struct RectificationRecord: Sendable, Hashable, Codable {
    public let id: UUID
    public let fields: [String]
    public let oldVersion: Int
    public let newVersion: Int
    public let rectifiedAt: Date
    /// Nil until ``Rectifications/listRecipients(number:on:)`` found them in the journal.
    public let recipients: [Recipient]?
}

/// Rectification of a patient's identity (GDPR art. 16) through the care records,
/// as a new version carrying the request's id, and the list of who read the old
/// values meanwhile (art. 19), from the journal.
///
/// Only the identity (names, birth date, sex, INS) is rectified here: medical
/// content is corrected by the care team adding a dated correction to the record,
/// never by rewriting it (the history of what was known when is itself care data).
public struct Rectifications: Sendable {
    let register: RequestRegister
    let ring: DataKeyRing
    /// How long after a rectification the recipients are listed: a request in flight
    /// when the rectification committed records its event within it.
    let inFlightMargin: TimeInterval

    /// Rectifications of `register`'s requests, with the keys of `ring`.
    public init(register: RequestRegister, ring: DataKeyRing, inFlightMargin: TimeInterval = 5) {
        self.register = register
        self.ring = ring
        self.inFlightMargin = inFlightMargin
    }

    /// The identity fields a rectification may change.
    public static let fields: Set<String> = ["last_name", "first_name", "birth_date", "sex", "ins"]

    /// Applies `values` (field → new value) to the patient of rectification request `number`.
    /// - Throws: ``SubjectRequestError`` `.wrongKind`, `.identityNotChecked`,
    ///   `.invalidArgument` (unknown field, invalid value, nothing to change), `.patientPseudonymised`.
    public func rectify(number: Int64, values: [String: String], on connection: isolated Connection) throws -> RectificationRecord {
        let record = try register.openRequest(number: number, on: connection)
        guard record.kind == .rectification else {
            throw SubjectRequestError(.wrongKind, "request \(number) is a \(record.kind.rawValue) request, not a rectification")
        }
        guard let patient = record.patientID else { throw SubjectRequestError(.wrongKind, "request \(number) is not about a patient") }
        guard record.identityCheck != nil else {
            throw SubjectRequestError(.identityNotChecked, "request \(number): check the requester's identity before changing the record (osmosectl dsar identity)")
        }
        guard !values.isEmpty else { throw SubjectRequestError(.invalidArgument, "name at least one field to rectify") }
        if let unknown = values.keys.sorted().first(where: { !Self.fields.contains($0) }) {
            throw SubjectRequestError(.invalidArgument, "\(unknown) cannot be rectified here; the identity fields are \(Self.fields.sorted().joined(separator: ", "))")
        }
        try PatientMatching.requireIdentifiable(patient, on: connection)
        let patch: PatientPatch
        let result: PatientRectificationResult
        do {
            patch = try CareJSON.decode(PatientPatch.self, from: Array(try JSONSerialization.data(withJSONObject: values)))
            result = try CareStore(ring: ring).rectifyPatient(patient, patch, request: record.id, on: connection)
        } catch let error as CareError {
            throw SubjectRequestError(.invalidArgument, "the rectification is refused: \(error.message)")
        }
        let written = try oldValuesWritten(patient: patient, fields: result.changedFields, before: result.after.version, on: connection)
        let id = UUID()
        let step = try EvidenceLog.append(
            record, kind: "rectified",
            details: [
                "fields": result.changedFields.joined(separator: ","), "old_version": String(result.before.version), "new_version": String(result.after.version),
                "old_values": digest(result.changedFields.map { "\($0)=\(Self.value($0, of: result.before))" }.joined(separator: "\n")),
                "new_values": digest(result.changedFields.map { "\($0)=\(Self.value($0, of: result.after))" }.joined(separator: "\n")),
            ], actor: register.actor, on: connection)
        try connection.query(
            """
            INSERT INTO dsar.rectifications (id, request_id, patient_id, fields, old_version, new_version, old_written_at, rectified_at, journal_request_id)
            VALUES ($1, $2, $3, $4::text[], $5, $6, $7, $8, $9)
            """,
            [
                id, record.id, patient, "{" + result.changedFields.joined(separator: ",") + "}", result.before.version, result.after.version,
                written.values.min() ?? result.before.updatedAt, result.after.updatedAt, step.journalRequestID,
            ])
        return RectificationRecord(
            id: id, fields: result.changedFields, oldVersion: result.before.version, newVersion: result.after.version, rectifiedAt: result.after.updatedAt,
            recipients: nil)
    }

    static func value(_ field: String, of view: PatientView) -> String {
        switch field {
        case "last_name": view.lastName ?? ""
        case "first_name": view.firstName ?? ""
        case "birth_date": view.birthDate ?? ""
        case "sex": view.sex.rawValue
        case "ins": view.ins ?? ""
        default: ""
        }
    }

    /// When each field's old value was written: the latest version before `version` that changed it.
    func oldValuesWritten(patient: UUID, fields: [String], before version: Int, on connection: isolated Connection) throws -> [String: Date] {
        var written: [String: Date] = [:]
        for row in try connection.query(
            """
            SELECT version, changed_at, changed_fields::text[] AS fields FROM care.record_versions
            WHERE record_type = 'patient' AND record_id = $1 AND version < $2 ORDER BY version
            """, [patient, version]
        ).rows {
            let changed = Set(try row.string("fields").trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").map(String.init))
            for field in fields where changed.contains(field) { written[field] = try row.date("changed_at") }
        }
        return written
    }

    /// Finds, for every rectification of request `number` not yet listed, who read
    /// the old values between their writing and the rectification, and records it.
    /// - Throws: ``SubjectRequestError`` `.journalNotReady` while the journal has not
    ///   yet sequenced the rectification and the requests that were in flight with it.
    public func listRecipients(number: Int64, on connection: isolated Connection) throws -> [RectificationRecord] {
        let record = try register.request(number: number, on: connection)
        guard record.kind == .rectification, let patient = record.patientID else {
            throw SubjectRequestError(.wrongKind, "request \(number) is not the rectification of a patient's record")
        }
        var records: [RectificationRecord] = []
        for row in try connection.query(
            """
            SELECT id, fields::text[] AS fields, old_version, new_version, old_written_at, rectified_at, journal_request_id, recipients::text AS recipients
            FROM dsar.rectifications WHERE request_id = $1 ORDER BY rectified_at
            """, [record.id]
        ).rows {
            let id = try row.uuid("id")
            let fields = try row.string("fields").trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").map(String.init)
            let rectifiedAt = try row.date("rectified_at")
            var recipients: [Recipient]
            if let stored = try row.optionalString("recipients") {
                recipients = try JSONDecoder().decode([Recipient].self, from: Data(stored.utf8))
            } else {
                try Self.requireSequenced(
                    patient: patient, journalRequestID: try row.string("journal_request_id"), after: rectifiedAt, margin: inFlightMargin, on: connection)
                let newVersion = try row.int("new_version")
                let written = try oldValuesWritten(patient: patient, fields: fields, before: newVersion, on: connection)
                recipients = try Self.readers(of: patient, fields: fields, written: written, until: rectifiedAt, on: connection)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                let json = try encoder.encode(recipients)
                try connection.query(
                    "UPDATE dsar.rectifications SET recipients = $2::jsonb, recipients_sha256 = decode($3, 'hex'), recipients_listed_at = clock_timestamp() WHERE id = $1",
                    [id, String(decoding: json, as: UTF8.self), String(digest(Array(json)).dropFirst(7))])
                try EvidenceLog.append(
                    record, kind: "recipients-listed",
                    details: ["rectification": id.uuidString.lowercased(), "recipients": String(recipients.count), "list": digest(Array(json))],
                    actor: register.actor, on: connection)
            }
            records.append(
                RectificationRecord(
                    id: id, fields: fields, oldVersion: try row.int("old_version"), newVersion: try row.int("new_version"), rectifiedAt: rectifiedAt,
                    recipients: recipients))
        }
        return records
    }

    /// Refuses until the journal has sequenced the rectification's own event, and
    /// until the margin after it has passed (the in-flight requests' events, committed
    /// within it, are sequenced within a second of their commit).
    static func requireSequenced(patient: UUID, journalRequestID: String, after moment: Date, margin: TimeInterval, on connection: isolated Connection) throws {
        let sequenced = try JournalSearch(patientID: patient, action: .subjectRequest, occurredFrom: moment.addingTimeInterval(-60), limit: 100_000)
            .entries(on: connection).contains { $0.requestID == journalRequestID }
        guard sequenced, Date() >= moment.addingTimeInterval(margin) else {
            throw SubjectRequestError(
                .journalNotReady,
                "the journal has not yet sequenced the accesses up to \(Int(margin)) s after the rectification: retry in a few seconds (is osmose-journald running?)")
        }
    }

    /// The successful reads and exports of `patient`'s record, by actor, each within the
    /// window in which one of `fields` held its old value.
    static func readers(of patient: UUID, fields: [String], written: [String: Date], until end: Date, on connection: isolated Connection) throws -> [Recipient] {
        guard let start = written.values.min() else { return [] }
        let entries = try JournalSearch(patientID: patient, result: .success, occurredFrom: start, occurredBefore: end, limit: Int(Int32.max))
            .entries(on: connection).filter { $0.action == AccessAction.read.rawValue || $0.action == AccessAction.export.rawValue }
        var byActor: [String: [JournalEntry]] = [:]
        for entry in entries { byActor[entry.actorUserID ?? "name:" + (entry.actorUsername ?? "?"), default: []].append(entry) }
        return byActor.values.map { reads in
            let first = reads.map(\.occurredAt).min()!
            let seen = fields.filter { field in written[field].map { Int64(($0.timeIntervalSince1970 * 1_000_000).rounded()) <= reads.map(\.occurredAt).max()! } ?? false }
            return Recipient(
                userID: reads[0].actorUserID, username: reads[0].actorUsername, role: reads[0].actorRole, team: reads[0].actorTeam, reads: reads.count,
                firstRead: JournalEntry.rfc3339(microseconds: first), lastRead: JournalEntry.rfc3339(microseconds: reads.map(\.occurredAt).max()!), fields: seen)
        }.sorted { ($0.username ?? "", $0.userID ?? "") < ($1.username ?? "", $1.userID ?? "") }
    }
}
