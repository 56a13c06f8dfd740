public import Foundation
import Journal
public import Store

/// The evidence file of one request, as handed to the CNIL: the request and its
/// identity check, the deadlines with their rules, every step (hash-chained, each
/// anchored in the signed journal), the notes and answer, the documents and what
/// was released, redacted, approved and delivered (digests), rectifications with
/// their recipients, and whether the chain and its anchors hold.
public struct EvidenceDocument: Sendable, Codable {
    /// The format's name and version.
    public var format = "osmose.subject-request-evidence.v1"
    /// When it was exported (RFC 3339, UTC).
    public var exportedAt: String
    /// The request, as registered (personal data decrypted).
    public var request: RequestRecord
    /// Its notes, extension notices and answers.
    public var notes: [RequestNote]
    /// Its documents (name, type, size, digest).
    public var documents: [RequestDocument]
    /// Every step, in order.
    public var steps: [EvidenceStep]
    /// Where each step's journal event is (sequence number), when sequenced.
    public var anchors: [EvidenceAnchor]
    /// What is wrong with the chain or its anchors; empty when the file is whole.
    public var problems: [String]
    /// The pack's record: digests, approval, release, delivery.
    public var pack: [String: String]?
    /// Rectifications and their recipients.
    public var rectifications: [RectificationRecord]
}

/// A step's journal event.
public struct EvidenceAnchor: Sendable, Hashable, Codable {
    public let position: Int
    public let journalRequestID: String
    /// The entry's sequence number, once osmose-journald sequenced it.
    public let sequence: UInt64?
    /// Whether the entry's reason carries the step's hash.
    public let matches: Bool
}

/// Builds and checks evidence files.
public struct EvidenceFiles: Sendable {
    let register: RequestRegister

    /// Evidence files of `register`'s requests.
    public init(register: RequestRegister) { self.register = register }

    /// The steps of request `number` and what is wrong with their chain (empty when whole).
    public func verify(number: Int64, on connection: isolated Connection) throws -> (steps: [EvidenceStep], problems: [String]) {
        let record = try register.request(number: number, on: connection)
        let steps = try EvidenceLog.steps(of: record.id, on: connection)
        return (steps, EvidenceChain.problems(in: steps, requestID: record.id))
    }

    /// The whole evidence file; its export is itself a step.
    public func document(number: Int64, now: Date = Date(), on connection: isolated Connection) throws -> EvidenceDocument {
        let record = try register.request(number: number, on: connection)
        let steps = try EvidenceLog.steps(of: record.id, on: connection)
        var problems = EvidenceChain.problems(in: steps, requestID: record.id)
        let anchors = try Self.anchors(of: steps, record: record, on: connection)
        for anchor in anchors where anchor.sequence != nil && !anchor.matches {
            problems.append("step \(anchor.position): its journal event does not carry its hash")
        }
        var pack: [String: String]?
        if let row = try connection.query(
            """
            SELECT encode(content_sha256, 'hex') AS content, checkpoint_id, consultations, staff_names, approved_at, approved_by, released_at, released_by,
                   encode(sealed_sha256, 'hex') AS sealed, sealed_to, delivered_at, delivery_method
            FROM dsar.packs WHERE request_id = $1
            """, [record.id]
        ).singleRow() {
            var values: [String: String] = [
                "content": "sha256:" + (try row.string("content")), "checkpoint": try row.string("checkpoint_id"), "consultations": try row.string("consultations"),
                "staff_names": try row.string("staff_names"), "approved_at": RequestRegister.moment(try row.date("approved_at")),
                "approved_by": try row.string("approved_by"),
            ]
            if let released = try row.optionalDate("released_at") {
                values["released_at"] = RequestRegister.moment(released)
                values["released_by"] = try row.string("released_by")
                values["sealed_file"] = "sha256:" + (try row.string("sealed"))
                values["sealed_to"] = try row.string("sealed_to")
            }
            if let delivered = try row.optionalDate("delivered_at") {
                values["delivered_at"] = RequestRegister.moment(delivered)
                values["delivery_method"] = try row.string("delivery_method")
            }
            pack = values
        }
        var rectifications: [RectificationRecord] = []
        if record.kind == .rectification {
            rectifications = try connection.query(
                "SELECT id, fields::text[] AS fields, old_version, new_version, rectified_at, recipients::text AS recipients FROM dsar.rectifications WHERE request_id = $1 ORDER BY rectified_at",
                [record.id]
            ).rows.map { row in
                RectificationRecord(
                    id: try row.uuid("id"), fields: try row.string("fields").trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").map(String.init),
                    oldVersion: try row.int("old_version"), newVersion: try row.int("new_version"), rectifiedAt: try row.date("rectified_at"),
                    recipients: try row.optionalString("recipients").map { try JSONDecoder().decode([Recipient].self, from: Data($0.utf8)) })
            }
        }
        let document = EvidenceDocument(
            exportedAt: RequestRegister.moment(now), request: record, notes: try register.notes(number: number, on: connection),
            documents: try register.documents(number: number, on: connection), steps: steps, anchors: anchors, problems: problems, pack: pack,
            rectifications: rectifications)
        try EvidenceLog.append(
            record, kind: "evidence-exported", details: ["steps": String(steps.count), "problems": String(problems.count)], actor: register.actor,
            on: connection)
        return document
    }

    /// The document as JSON, keys sorted.
    public static func json(_ document: EvidenceDocument) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return Array(try encoder.encode(document))
    }

    /// Each step's journal event, found by its request id among the subject-request events of the request's period.
    static func anchors(of steps: [EvidenceStep], record: RequestRecord, on connection: isolated Connection) throws -> [EvidenceAnchor] {
        guard let first = steps.first else { return [] }
        let search = JournalSearch(
            patientID: record.patientID, action: .subjectRequest, occurredFrom: Date(timeIntervalSince1970: Double(first.occurredAt) / 1_000_000 - 60),
            limit: Int(Int32.max))
        var byRequest: [String: JournalEntry] = [:]
        for entry in try search.entries(on: connection) where entry.objectType == "subject-request" && entry.objectID == String(record.number) {
            byRequest[entry.requestID] = entry
        }
        return steps.map { step in
            let entry = byRequest[step.journalRequestID]
            return EvidenceAnchor(
                position: step.position, journalRequestID: step.journalRequestID, sequence: entry?.sequence,
                matches: entry?.reason == EvidenceChain.journalReason(step))
        }
    }
}
