public import Foundation
public import Store

/// A rectification of a patient's identity made through the care records for a
/// subject request (GDPR art. 16): the before and after states and the fields changed.
public struct PatientRectificationResult: Sendable, Hashable {
    /// The patient before.
    public let before: PatientView
    /// The patient after (its version is the new version).
    public let after: PatientView
    /// The fields whose value changed, sorted.
    public let changedFields: [String]
}

extension CareStore {
    /// Applies `patch` to the patient's identity as a new version that carries the
    /// subject request `request` instead of a care user (migration 0031), with the
    /// same validation, blind-index tokens and INS uniqueness as a care user's change.
    /// - Throws: ``CareError`` `.notFound`, `.invalidField` for a value the care
    ///   service would refuse, `.pseudonymised` for a patient past the retention term, `.conflict` for an INS another patient holds or when
    ///   nothing would change.
    public func rectifyPatient(_ id: UUID, _ patch: PatientPatch, request: UUID, on connection: isolated Connection) throws -> PatientRectificationResult {
        try connection.query("SELECT 1 FROM care.patients WHERE id = $1 FOR UPDATE", [id])
        let before = try patient(id, on: connection)
        guard before.pseudonymisedAt == nil else {
            throw CareError(.pseudonymised, "this patient was pseudonymised at the end of the retention term: no identity is held to rectify")
        }
        var after = before
        if let value = patch.lastName { after.lastName = try Validate.name(value, field: "last_name") }
        if let value = patch.firstName { after.firstName = try Validate.name(value, field: "first_name") }
        if let value = patch.birthDate { after.birthDate = try Validate.birthDate(value) }
        if let value = patch.sex { after.sex = value }
        if let value = patch.ins { after.ins = try Validate.ins(value) }
        let changed = try Self.changedFields(before, after)
        guard !changed.isEmpty else { throw CareError(.conflict, "the rectification changes nothing: the record already holds these values") }
        if let ins = after.ins, ins != before.ins {
            let match = try anyToken("search_ins", from: 2) { try insToken(ins, keyID: $0) }
            let taken = try !connection.query("SELECT 1 FROM care.patients WHERE id <> $1 AND \(match.sql)", [id] + match.tokens).rows.isEmpty
            try requireCurrentBlindKeys(on: connection)
            if taken { throw CareError(.conflict, "a patient with this INS is already registered") }
        }
        guard let lastName = after.lastName, let firstName = after.firstName, let birthDate = after.birthDate else {
            throw CareError(.internalError, "an identified patient's record lacks its name or birth date")
        }
        let keyID = try index.primaryKeyID()
        let now = Date()
        try connection.query(
            """
            UPDATE care.patients SET version = $2, last_name = $3, first_name = $4, birth_date = $5, sex = $6, ins = $7,
                search_name = $8, search_ins = $9, blind_key_id = $10, updated_at = $11, updated_by = NULL
            WHERE id = $1
            """,
            [
                id, before.version + 1, try seal(lastName, .patientLastName, id),
                try seal(firstName, .patientFirstName, id), try seal(birthDate, .patientBirthDate, id),
                try seal(after.sex.rawValue, .patientSex, id), try sealOptional(after.ins, .patientINS, id),
                try nameToken(lastName: lastName, firstName: firstName, birthDate: birthDate, keyID: keyID),
                try after.ins.map { try insToken($0, keyID: keyID) }, keyID, now,
            ])
        let view = try patient(id, on: connection)
        let versionID = UUID()
        let snapshot = try CareJSON.encoder().encode(view)
        let sealed = try cipher.encrypt(Array(snapshot), for: EncryptedColumn.recordVersionSnapshot.location(rowID: versionID))
        try connection.query(
            """
            INSERT INTO care.record_versions (id, record_type, record_id, version, changed_at, changed_by, changed_fields, snapshot, subject_request_id)
            VALUES ($1, 'patient', $2, $3, $4, NULL, $5::text[], $6, $7)
            """,
            [versionID, id, view.version, now, "{" + changed.joined(separator: ",") + "}", sealed, request])
        return PatientRectificationResult(before: before, after: view, changedFields: changed)
    }
}
