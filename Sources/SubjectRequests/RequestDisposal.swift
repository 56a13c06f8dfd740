import Cryptography
public import Foundation
public import Store

/// The end of a request's term (policy `subject_requests`, applied by Retention):
/// the closed requests a plan considers, and the disposal of one request's content
/// in the caller's transaction (one request per transaction).
///
/// Destroyed: the requester's name and contact, the identity check (what was seen,
/// who checked, when), the link to the patient or staff account, every note,
/// answer and extension notice, every document, every redaction, the access pack
/// and its record (content, digests, recipient), rectifications and their
/// recipients, and the queued pack jobs of the request with their sealed outputs.
/// SubjectRequests keeps no files of its own: a sealed pack or evidence file is
/// written to a scratch directory, read back into `dsar.jobs.output` and unlinked
/// (``PackOperations/perform(_:actor:ring:settings:scratch:on:)``), so the jobs'
/// rows are where those files live on.
///
/// The bodies of its evidence steps are erased too: their details hold unsalted
/// digests of short values (the requester's name, notes, file names, redacted
/// text) that a candidate value would confirm.
///
/// Kept, so that an auditor can see the request existed and was disposed of
/// lawfully: its number, kind, the requester's capacity, dates received, opened
/// and closed, outcome, deadlines, the evidence chain's structure (`dsar.steps`
/// without bodies: position, time, actor, kind, previous hash and hash, each hash
/// carried by a journal entry, so the links still check and stay tied to the
/// signed journal; ``EvidenceChain/problems(in:requestID:)``), and the disposal:
/// when, under which plan, its SHA-256 and who approved it when. The journal's own entries about the request stay: they are
/// the journal's, under its own term.
public enum RequestDisposal {
    /// A closed request not yet disposed of, as a retention plan sees it.
    public struct ClosedRequest: Sendable, Hashable {
        /// Its id.
        public let id: UUID
        /// Its number in the register.
        public let number: Int64
        /// Its kind (`access`, `erasure` …).
        public let kind: String
        /// The patient it concerns (legal holds name patients), if any.
        public let patientID: UUID?
        /// When it was closed.
        public let closedAt: Date
    }

    /// Where a request stands for its disposal.
    public enum State: Sendable, Hashable {
        /// Closed, not disposed of.
        case closed(ClosedRequest)
        /// Still open: never disposed of.
        case open
        /// Already disposed of, at that time.
        case disposed(Date)
        /// A pack job of the request is queued or running: disposal waits for it.
        case jobPending
        /// No request has that number.
        case unknown
    }

    /// What the disposal of a plan is recorded with.
    public struct Authority: Sendable, Hashable {
        /// The retention plan.
        public let planID: Int64
        /// Its SHA-256 (hex), as approved.
        public let planSHA256: String
        /// Who approved it.
        public let approvedBy: String
        /// When.
        public let approvedAt: Date

        /// An authority.
        public init(planID: Int64, planSHA256: String, approvedBy: String, approvedAt: Date) {
            self.planID = planID
            self.planSHA256 = planSHA256
            self.approvedBy = approvedBy
            self.approvedAt = approvedAt
        }
    }

    /// What a disposal removed (or, for a dry run, would remove).
    public struct Receipt: Sendable, Hashable {
        /// The request's number.
        public let number: Int64
        /// Rows deleted or values erased, per table (`dsar.notes` …).
        public let rows: [String: Int]
        /// Values removed in all (encrypted values erased, rows deleted).
        public let valuesRemoved: Int
        /// SHA-256 (hex) of what was removed, as it was stored: each value as
        /// `table.column/row id`, its length and its bytes, in table, row, column order.
        public let removedSHA256: String
    }

    /// The closed requests not yet disposed of, by number.
    public static func closedRequests(on connection: isolated Connection) throws -> [ClosedRequest] {
        try connection.query(
            "SELECT id, number, kind, patient_id, closed_at FROM dsar.requests WHERE status = 'closed' AND disposed_at IS NULL ORDER BY number"
        ).rows.map(closed(from:))
    }

    /// Where request `number` stands, its row locked for the rest of the transaction.
    public static func state(of number: Int64, on connection: isolated Connection) throws -> State {
        guard let row = try connection.query(
            "SELECT id, number, kind, status, patient_id, closed_at, disposed_at FROM dsar.requests WHERE number = $1 FOR UPDATE", [number]
        ).singleRow() else { return .unknown }
        if let disposed = try row.optionalDate("disposed_at") { return .disposed(disposed) }
        guard try row.string("status") == "closed" else { return .open }
        if try !connection.query(
            "SELECT 1 FROM dsar.jobs WHERE state IN ('queued', 'running') AND \(jobOf)", [number]
        ).rows.isEmpty {
            return .jobPending
        }
        return .closed(try closed(from: row))
    }

    static func closed(from row: Row) throws -> ClosedRequest {
        ClosedRequest(
            id: try row.uuid("id"), number: try row.int64("number"), kind: try row.string("kind"),
            patientID: try row.isNull("patient_id") ? nil : try row.uuid("patient_id"), closedAt: try row.date("closed_at"))
    }

    /// A pack job's operation names request `$1` (``PackOperation`` is `{"<case>": {"number": N, …}}`).
    static let jobOf = "EXISTS (SELECT 1 FROM jsonb_each(operation) AS o WHERE jsonb_typeof(o.value) = 'object' AND (o.value ->> 'number')::bigint = $1::text::bigint)"

    /// Destroys the content of closed request `request` in the caller's transaction
    /// (call ``state(of:on:)`` first, in the same transaction, to lock and check it).
    /// With `dryRun`, counts and hashes what would go and changes nothing.
    public static func dispose(
        _ request: ClosedRequest, under authority: Authority, at now: Date, dryRun: Bool, on connection: isolated Connection
    ) throws -> Receipt {
        var parts: [[UInt8]] = []
        var rows: [String: Int] = [:]
        var values = 0
        /// Reads the values of `columns` (label, expression giving bytea) of `table`'s rows matching `condition`.
        func take(_ table: String, _ columns: [(String, String)], where condition: String, parameter: String, id: String = "id") throws -> Int {
            let list = columns.enumerated().map { "(\($0.element.1))::bytea AS c\($0.offset)" }.joined(separator: ", ")
            let found = try connection.query("SELECT \(id)::text AS row_id, \(list) FROM \(table) WHERE \(condition) ORDER BY \(id)", [parameter]).rows
            for row in found {
                let rowID = try row.string("row_id")
                for (index, column) in columns.enumerated() {
                    guard let bytes = try row.optionalBytes("c\(index)") else { continue }
                    parts.append(Array("\(table).\(column.0)/\(rowID)\n\(bytes.count)\n".utf8) + bytes)
                    values += 1
                }
            }
            return found.count
        }
        func plain(_ names: String...) -> [(String, String)] { names.map { ($0, $0) } }
        let number = request.number
        // The request's own personal data (the row stays), then its content, row by row.
        _ = try take("dsar.requests", plain("requester_name", "requester_contact", "identity_check"), where: "id = $1::uuid", parameter: request.id.uuidString)
        rows["dsar.notes"] = try take("dsar.notes", plain("body"), where: "request_id = $1::uuid", parameter: request.id.uuidString)
        rows["dsar.documents"] = try take("dsar.documents", plain("file_name", "content"), where: "request_id = $1::uuid", parameter: request.id.uuidString)
        rows["dsar.redactions"] = try take("dsar.redactions", plain("removed_text"), where: "request_id = $1::uuid", parameter: request.id.uuidString)
        rows["dsar.packs"] = try take(
            "dsar.packs", plain("content", "content_sha256", "sealed_sha256") + [("sealed_to", "convert_to(sealed_to, 'UTF8')")], where: "request_id = $1::uuid",
            parameter: request.id.uuidString)
        rows["dsar.rectifications"] = try take(
            "dsar.rectifications",
            [("recipients", "convert_to(recipients::text, 'UTF8')"), ("fields", "convert_to(array_to_string(fields, ','), 'UTF8')")],
            where: "request_id = $1::uuid", parameter: request.id.uuidString)
        // The bodies of its evidence steps (their details hold digests of short, guessable values).
        rows["dsar.steps"] = try take(
            "dsar.steps", [("body", "convert_to(body, 'UTF8')")], where: "request_id = $1::uuid AND body IS NOT NULL", parameter: request.id.uuidString,
            id: "position")
        // Pack jobs of the request: their sealed outputs (the only place a sealed file lives on) and summaries.
        rows["dsar.jobs"] = try take(
            "dsar.jobs", plain("output") + [("result", "convert_to(result::text, 'UTF8')")], where: jobOf, parameter: String(number))
        let links = request.patientID == nil ? 0 : 1
        values += links
        let digest = SHA256.hash(concatenating: parts).map { String(format: "%02x", $0) }.joined()
        let receipt = Receipt(number: number, rows: rows.filter { $0.value > 0 }, valuesRemoved: values, removedSHA256: digest)
        guard !dryRun else { return receipt }
        for table in ["dsar.notes", "dsar.documents", "dsar.redactions", "dsar.packs", "dsar.rectifications"] {
            try connection.query("DELETE FROM \(table) WHERE request_id = $1", [request.id])
        }
        try connection.query("DELETE FROM dsar.jobs WHERE \(jobOf)", [number])
        let updated = try connection.query(
            """
            UPDATE dsar.requests
            SET patient_id = NULL, staff_user_id = NULL, requester_name = NULL, requester_contact = NULL,
                identity_check = NULL, identity_checked_at = NULL, identity_checked_by = NULL,
                disposed_at = $2, disposal_plan_id = $3, disposal_plan_sha256 = $4, disposal_approved_by = $5, disposal_approved_at = $6
            WHERE id = $1 AND status = 'closed' AND disposed_at IS NULL
            RETURNING number
            """, [request.id, now, authority.planID, authority.planSHA256, authority.approvedBy, authority.approvedAt]
        ).rows
        guard updated.count == 1 else {
            throw SubjectRequestError(.internalError, "request \(number) changed during its disposal (no longer closed, or already disposed of)")
        }
        // After the request is marked disposed: the database lets only a disposed request's step bodies be erased.
        try connection.query("UPDATE dsar.steps SET body = NULL WHERE request_id = $1 AND body IS NOT NULL", [request.id])
        return receipt
    }
}
