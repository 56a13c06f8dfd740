public import Foundation
public import Journal
public import Store

/// The stored evidence file of each request (`dsar.steps`): appending a step (with
/// its journal event, whose reason carries the step's hash, so that the journal's
/// signed tree commits to the file too), reading and checking the chain.
public enum EvidenceLog {
    /// Appends a step to `record`'s file and journals it, in the caller's transaction.
    /// - Parameters:
    ///   - record: the request.
    ///   - kind: what was done.
    ///   - details: codes, dates and digests; never patient data in clear.
    ///   - actor: who did it.
    ///   - patientID: the patient the journal event names; the request's patient by default.
    @discardableResult
    public static func append(
        _ record: RequestRecord, kind: String, details: [String: String], actor: SystemActor, patientID: UUID? = nil, on connection: isolated Connection
    ) throws -> EvidenceStep {
        try connection.query("SELECT 1 FROM dsar.requests WHERE id = $1 FOR UPDATE", [record.id])
        let last = try steps(of: record.id, on: connection).last
        let now = Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
        let journalRequestID = UUID().uuidString.lowercased()
        let step = try EvidenceChain.step(
            after: last, requestID: record.id, occurredAt: max(now, (last?.occurredAt ?? 0) + 1), actor: actor.name, kind: kind, details: details,
            journalRequestID: journalRequestID)
        try connection.query(
            """
            INSERT INTO dsar.steps (request_id, position, occurred_at, actor, kind, body, previous_hash, hash, journal_request_id)
            VALUES ($1, $2, $3::timestamptz, $4, $5, $6, $7, $8, $9)
            """,
            [
                record.id, step.position, JournalEntry.rfc3339(microseconds: step.occurredAt), step.actor, step.kind, step.body, step.previousHash, step.hash,
                journalRequestID,
            ])
        var event = AccessEvent.system(
            by: actor, action: .subjectRequest, objectType: "subject-request", objectID: String(record.number), patientID: patientID ?? record.patientID,
            purpose: .subjectRequest, reason: EvidenceChain.journalReason(step))
        event.requestID = journalRequestID
        try connection.record(event)
        return step
    }

    /// The steps of request `id`, in order.
    public static func steps(of id: UUID, on connection: isolated Connection) throws -> [EvidenceStep] {
        try connection.query(
            """
            SELECT position, (extract(epoch FROM occurred_at) * 1000000)::bigint AS occurred, actor, kind, body, previous_hash, hash, journal_request_id
            FROM dsar.steps WHERE request_id = $1 ORDER BY position
            """, [id]
        ).rows.map { row in
            // Erased (empty) once the request was disposed of at the end of its term.
            let body = try row.optionalString("body") ?? ""
            return EvidenceStep(
                requestID: id, position: try row.int("position"), occurredAt: try row.int64("occurred"), actor: try row.string("actor"),
                kind: try row.string("kind"), details: try Self.details(in: body), body: body, previousHash: try row.bytes("previous_hash"),
                hash: try row.bytes("hash"), journalRequestID: try row.string("journal_request_id"))
        }
    }

    /// The `details` object of a step's body.
    static func details(in body: String) throws -> [String: String] {
        struct Body: Decodable { let details: [String: String] }
        do {
            return try JSONDecoder().decode(Body.self, from: Data(body.utf8)).details
        } catch {
            return [:]
        }
    }
}
