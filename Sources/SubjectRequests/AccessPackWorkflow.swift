import Glibc
import CareRecords
import Cryptography
public import Foundation
import Journal
public import Keyring
public import Store

/// What an approval recorded.
public struct ApprovedPack: Sendable, Hashable, Codable {
    /// `sha256:` and the hex SHA-256 of the pack's canonical JSON.
    public let contentSHA256: String
    /// The checkpoint its proofs are against.
    public let checkpointID: Int64
    /// How many accesses it lists.
    public let consultations: Int
    /// How many passages were removed.
    public let redactions: Int
    /// Whether staff are named.
    public let staffNames: Bool
}

/// What a release recorded.
public struct ReleasedPack: Sendable, Hashable, Codable {
    /// The sealed file written.
    public let file: SealedFile
    /// The approved content's digest.
    public let contentSHA256: String
    /// What it was sealed to.
    public let sealedTo: String
}

/// An access request from draft to delivery: the DPO reviews a draft, removes
/// third parties' passages, approves the pack (which is then kept, encrypted, as
/// approved), releases it sealed for the requester (once: a pack is never released
/// twice), and records its delivery. Each step is in the evidence file and the journal.
public struct AccessPackWorkflow: Sendable {
    let register: RequestRegister
    let ring: DataKeyRing

    /// The workflow of `register`'s requests, decrypting with `ring`.
    public init(register: RequestRegister, ring: DataKeyRing) {
        self.register = register
        self.ring = ring
    }

    var actor: SystemActor { register.actor }

    /// An open access (or portability) request about a patient.
    func packRequest(_ number: Int64, on connection: isolated Connection) throws -> RequestRecord {
        let record = try register.openRequest(number: number, on: connection)
        guard record.kind == .access || record.kind == .portability else {
            throw SubjectRequestError(.wrongKind, "request \(number) is a \(record.kind.rawValue) request: only an access (or portability) request has a pack")
        }
        guard record.patientID != nil else {
            throw SubjectRequestError(.wrongKind, "request \(number) is about a staff account: its data is shown with osmosectl users list, not in a pack")
        }
        return record
    }

    /// The passages recorded for removal, decrypted.
    func redactions(of record: RequestRecord, on connection: isolated Connection) throws -> [(id: UUID, redaction: Redaction)] {
        let cipher = ColumnCipher(ring: ring)
        return try connection.query(
            "SELECT id, table_name, row_id, column_name, removed_text, reason FROM dsar.redactions WHERE request_id = $1 ORDER BY recorded_at, id", [record.id]
        ).rows.map { row in
            let id = try row.uuid("id")
            guard let reason = RedactionReason(rawValue: try row.string("reason")) else { throw SubjectRequestError(.internalError, "stored redaction reason is not valid") }
            return (
                id,
                Redaction(
                    table: try row.string("table_name"), row: try row.string("row_id"), column: try row.string("column_name"),
                    text: try cipher.decryptString(try row.bytes("removed_text"), at: EncryptedColumn.requestRedactedText.location(rowID: id)), reason: reason)
            )
        }
    }

    func released(_ record: RequestRecord, on connection: isolated Connection) throws -> Row? {
        try connection.query(
            "SELECT released_at, encode(sealed_sha256, 'hex') AS sealed FROM dsar.packs WHERE request_id = $1 AND released_at IS NOT NULL", [record.id]
        ).singleRow()
    }

    func refuseIfReleased(_ record: RequestRecord, on connection: isolated Connection) throws {
        if let row = try released(record, on: connection) {
            throw SubjectRequestError(
                .packAlreadyReleased,
                "the pack of request \(record.number) was released on \(RequestRegister.moment(try row.date("released_at"))) (sealed file sha256:\(try row.string("sealed"))); a pack is released once: register a new request for a new pack")
        }
    }

    /// The draft pack, with the passages recorded for removal removed; reading it is a step of the evidence file.
    public func review(number: Int64, staffNames: Bool, on connection: isolated Connection) throws -> AccessPack {
        let record = try packRequest(number, on: connection)
        try refuseIfReleased(record, on: connection)
        let pack = try AccessPackBuilder(ring: ring).build(
            for: record, staffNames: staffNames, redactions: try redactions(of: record, on: connection).map(\.redaction), on: connection)
        try EvidenceLog.append(
            record, kind: "pack-reviewed",
            details: [
                "checkpoint": String(pack.journal.checkpointID), "consultations": String(pack.consultations.count), "staff_names": String(staffNames),
                "content": digest(try pack.canonicalJSON()),
            ], actor: actor, on: connection)
        return pack
    }

    /// Records a passage to remove from the pack (it must be found where it is named).
    /// - Returns: the redaction's id.
    public func redact(number: Int64, _ redaction: Redaction, on connection: isolated Connection) throws -> UUID {
        let record = try packRequest(number, on: connection)
        try refuseIfReleased(record, on: connection)
        try RequestRegister.checkText(redaction.text, what: "the text to redact", limit: 10_000)
        let recorded = try redactions(of: record, on: connection).map(\.redaction)
        _ = try AccessPackBuilder(ring: ring).build(
            for: record, staffNames: false, redactions: recorded + [redaction], withConsultations: false, on: connection)
        let id = UUID()
        let sum = digest(redaction.text)
        try connection.query(
            """
            INSERT INTO dsar.redactions (id, request_id, table_name, row_id, column_name, removed_text, removed_sha256, reason, recorded_by)
            VALUES ($1, $2, $3, $4, $5, $6, decode($7, 'hex'), $8, $9)
            """,
            [
                id, record.id, redaction.table, redaction.row, redaction.column,
                try ColumnCipher(ring: ring).encrypt(redaction.text, for: EncryptedColumn.requestRedactedText.location(rowID: id)), String(sum.dropFirst(7)),
                redaction.reason.rawValue, actor.name,
            ])
        try EvidenceLog.append(
            record, kind: "redacted",
            details: [
                "redaction": id.uuidString.lowercased(), "table": redaction.table, "row": redaction.row, "column": redaction.column,
                "reason": redaction.reason.rawValue, "text": sum,
            ], actor: actor, on: connection)
        return id
    }

    /// Withdraws a recorded redaction (before release).
    public func withdrawRedaction(number: Int64, redaction id: UUID, on connection: isolated Connection) throws {
        let record = try packRequest(number, on: connection)
        try refuseIfReleased(record, on: connection)
        guard try connection.query("DELETE FROM dsar.redactions WHERE id = $1 AND request_id = $2", [id, record.id]).affectedRows == 1 else {
            throw SubjectRequestError(.invalidArgument, "request \(number) has no redaction \(id.uuidString.lowercased())")
        }
        try EvidenceLog.append(record, kind: "redaction-withdrawn", details: ["redaction": id.uuidString.lowercased()], actor: actor, on: connection)
    }

    /// The redactions recorded for a request, with their ids (the text included: the DPO's own review).
    public func recordedRedactions(number: Int64, on connection: isolated Connection) throws -> [(id: UUID, redaction: Redaction)] {
        try redactions(of: try register.request(number: number, on: connection), on: connection)
    }

    /// Approves the pack as it stands now: builds it, keeps it encrypted until its
    /// release, and records its digest (approving again before release replaces it).
    /// - Throws: ``SubjectRequestError`` `.identityNotChecked`, `.packAlreadyReleased`.
    public func approve(number: Int64, staffNames: Bool, now: Date = Date(), on connection: isolated Connection) throws -> ApprovedPack {
        let record = try packRequest(number, on: connection)
        guard record.identityCheck != nil else {
            throw SubjectRequestError(.identityNotChecked, "request \(number): the requester's identity is not checked yet (osmosectl dsar identity); no pack is approved before")
        }
        try refuseIfReleased(record, on: connection)
        let recorded = try redactions(of: record, on: connection).map(\.redaction)
        let pack = try AccessPackBuilder(ring: ring).build(for: record, staffNames: staffNames, redactions: recorded, now: now, on: connection)
        let json = try pack.canonicalJSON()
        let sum = digest(json)
        let id = try connection.query("SELECT id FROM dsar.packs WHERE request_id = $1", [record.id]).singleRow().map { try $0.uuid("id") } ?? UUID()
        let sealed = try ColumnCipher(ring: ring).encrypt(json, for: EncryptedColumn.requestPackContent.location(rowID: id))
        try connection.query(
            """
            INSERT INTO dsar.packs (id, request_id, content, content_sha256, checkpoint_id, consultations, staff_names, approved_at, approved_by)
            VALUES ($1, $2, $3, decode($4, 'hex'), $5, $6, $7, $8, $9)
            ON CONFLICT (request_id) DO UPDATE SET content = EXCLUDED.content, content_sha256 = EXCLUDED.content_sha256,
                checkpoint_id = EXCLUDED.checkpoint_id, consultations = EXCLUDED.consultations, staff_names = EXCLUDED.staff_names,
                approved_at = EXCLUDED.approved_at, approved_by = EXCLUDED.approved_by
            """,
            [id, record.id, sealed, String(sum.dropFirst(7)), pack.journal.checkpointID, pack.consultations.count, staffNames, now, actor.name])
        let approved = ApprovedPack(
            contentSHA256: sum, checkpointID: pack.journal.checkpointID, consultations: pack.consultations.count, redactions: pack.redactions.count,
            staffNames: staffNames)
        try EvidenceLog.append(
            record, kind: "pack-approved",
            details: [
                "content": sum, "checkpoint": String(approved.checkpointID), "consultations": String(approved.consultations),
                "redactions": String(approved.redactions), "staff_names": String(staffNames), "tables": String(pack.tables.filter { !$0.rows.isEmpty }.count),
            ], actor: actor, on: connection)
        if staffNames {
            try EvidenceLog.append(record, kind: "staff-names-disclosed", details: ["decided_by": actor.name], actor: actor, on: connection)
        }
        return approved
    }

    /// The approved pack of a request, decrypted and checked against its digest.
    public func approvedPack(number: Int64, on connection: isolated Connection) throws -> (pack: AccessPack, json: [UInt8]) {
        let record = try register.request(number: number, on: connection)
        return try approvedContent(record, on: connection)
    }

    func approvedContent(_ record: RequestRecord, on connection: isolated Connection) throws -> (pack: AccessPack, json: [UInt8]) {
        try refuseIfReleased(record, on: connection)
        guard let row = try connection.query(
            "SELECT id, content, encode(content_sha256, 'hex') AS sum FROM dsar.packs WHERE request_id = $1", [record.id]
        ).singleRow() else {
            throw SubjectRequestError(.packNotApproved, "no pack of request \(record.number) is approved: review it, then osmosectl dsar approve \(record.number)")
        }
        let json = try ColumnCipher(ring: ring).decrypt(try row.bytes("content"), at: EncryptedColumn.requestPackContent.location(rowID: try row.uuid("id")))
        guard digest(json) == "sha256:" + (try row.string("sum")) else {
            throw SubjectRequestError(.internalError, "the stored pack of request \(record.number) does not match its approved digest")
        }
        return (try AccessPack.decode(json), json)
    }

    /// Releases the approved pack: seals it for the requester into `path` (which
    /// must not exist) and records the sealed file's digest; the pack's clear content
    /// is then dropped from the database.
    /// - Throws: ``SubjectRequestError`` `.packAlreadyReleased` the second time,
    ///   `.packNotApproved`, `.tooEarly` before the 48 hours of reflection,
    ///   `.notReady` when redactions changed since the approval.
    public func release(
        number: Int64, to target: SealTarget, path: String, establishment: String, now: Date = Date(), on connection: isolated Connection
    ) throws -> ReleasedPack {
        let record = try packRequest(number, on: connection)
        try refuseIfReleased(record, on: connection)
        if let earliest = record.earliestAnswer, now < earliest {
            throw SubjectRequestError(
                .tooEarly,
                "health information is communicated no sooner than 48 hours after the request (CSP L1111-7): not before \(RequestRegister.moment(earliest))")
        }
        let (pack, json) = try approvedContent(record, on: connection)
        let recorded = try redactions(of: record, on: connection)
        guard recorded.count == pack.redactions.count else {
            throw SubjectRequestError(.notReady, "redactions changed since the pack of request \(number) was approved: review and approve it again")
        }
        let sealed = try SealedArchive.write(try AccessPackFiles.members(of: pack, json: json, establishment: establishment), to: path, for: target)
        do {
            try connection.query(
                """
                UPDATE dsar.packs SET content = NULL, released_at = $2, released_by = $3, sealed_sha256 = decode($4, 'hex'), sealed_to = $5
                WHERE request_id = $1
                """, [record.id, now, actor.name, String(sealed.sha256.dropFirst(7)), target.recorded])
            try EvidenceLog.append(
                record, kind: "pack-released",
                details: [
                    "content": digest(json), "sealed_file": sealed.sha256, "sealed_to": target.recorded, "forms": "html, json, fhir-r4",
                    "consultations": String(pack.consultations.count), "checkpoint": String(pack.journal.checkpointID),
                ], actor: actor, on: connection)
        } catch {
            unlink(path)
            throw error
        }
        return ReleasedPack(file: sealed, contentSHA256: digest(json), sealedTo: target.recorded)
    }

    /// Records how and when the released pack reached the requester.
    public func recordDelivery(number: Int64, method: DeliveryMethod, at moment: Date, on connection: isolated Connection) throws {
        let record = try packRequest(number, on: connection)
        guard let row = try released(record, on: connection) else {
            throw SubjectRequestError(.notReady, "the pack of request \(number) is not released yet (osmosectl dsar export)")
        }
        guard moment >= (try row.date("released_at")).addingTimeInterval(-60), moment <= Date().addingTimeInterval(300) else {
            throw SubjectRequestError(.invalidDate, "the delivery must be dated between the release and now")
        }
        try connection.query(
            "UPDATE dsar.packs SET delivered_at = $2, delivery_method = $3 WHERE request_id = $1 AND delivered_at IS NULL", [record.id, moment, method.rawValue])
        try EvidenceLog.append(
            record, kind: "pack-delivered", details: ["method": method.rawValue, "delivered_at": RequestRegister.moment(moment)], actor: actor, on: connection)
    }
}
