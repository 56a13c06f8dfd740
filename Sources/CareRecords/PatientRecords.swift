public import Foundation
public import Store

/// Patients: registration, identity changes, exact search through the blind indexes.
extension CareStore {
    /// Registers a patient. An INS already registered is a conflict.
    public func createPatient(_ input: PatientInput, by principal: Principal, on connection: isolated Connection) throws -> PatientView {
        let lastName = try Validate.name(input.lastName, field: "last_name")
        let firstName = try Validate.name(input.firstName, field: "first_name")
        let birthDate = try Validate.birthDate(input.birthDate)
        let ins = try input.ins.map(Validate.ins)
        let id = UUID()
        let now = Date()
        let keyID = try index.primaryKeyID()
        if let ins {
            let match = try anyToken("search_ins", from: 1) { try insToken(ins, keyID: $0) }
            let taken = try !connection.query("SELECT 1 FROM care.patients WHERE \(match.sql)", match.tokens).rows.isEmpty
            try requireCurrentBlindKeys(on: connection)
            if taken { throw CareError(.conflict, "a patient with this INS is already registered") }
        }
        try connection.query(
            """
            INSERT INTO care.patients (id, version, last_name, first_name, birth_date, sex, ins, search_name, search_ins, blind_key_id,
                created_at, created_by, updated_at, updated_by)
            VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10, $11)
            """,
            [
                id, try seal(lastName, .patientLastName, id), try seal(firstName, .patientFirstName, id),
                try seal(birthDate, .patientBirthDate, id), try seal(input.sex.rawValue, .patientSex, id),
                try sealOptional(ins, .patientINS, id),
                try nameToken(lastName: lastName, firstName: firstName, birthDate: birthDate, keyID: keyID), try ins.map { try insToken($0, keyID: keyID) }, keyID,
                now, principal.userID,
            ])
        let view = try patient(id, on: connection)
        try recordVersion(.patient, id: id, version: 1, fields: PatientInput.fields.sorted(), state: view, by: principal, at: now, on: connection)
        return view
    }

    /// Exact-match search on last name + first name + birth date, or on INS, through the blind indexes.
    public func searchPatients(
        lastName: String?, firstName: String?, birthDate: String?, ins: String?, on connection: isolated Connection
    ) throws -> [PatientView] {
        let rows: [Row]
        if let ins {
            let valid = try Validate.ins(ins)
            let match = try anyToken("search_ins", from: 1) { try insToken(valid, keyID: $0) }
            rows = try connection.query("SELECT id FROM care.patients WHERE \(match.sql)", match.tokens).rows
        } else if let lastName, let firstName, let birthDate {
            let (last, first, birth) = (
                try Validate.name(lastName, field: "last_name"), try Validate.name(firstName, field: "first_name"), try Validate.birthDate(birthDate)
            )
            let match = try anyToken("search_name", from: 1) { try nameToken(lastName: last, firstName: first, birthDate: birth, keyID: $0) }
            rows = try connection.query("SELECT id FROM care.patients WHERE \(match.sql) ORDER BY created_at", match.tokens).rows
        } else {
            throw CareError(.invalidQuery, "search by ins, or by last_name, first_name and birth_date together")
        }
        try requireCurrentBlindKeys(on: connection)
        return try rows.map { try patient(try $0.uuid("id"), on: connection) }
    }

    /// One patient.
    public func patient(_ id: UUID, on connection: isolated Connection) throws -> PatientView {
        guard let row = try connection.query("SELECT * FROM care.patients WHERE id = $1", [id]).singleRow() else {
            throw CareError(.notFound, "no such patient")
        }
        let table = "care.patients"
        guard let sex = Sex(rawValue: try open(row, .patientSex, id)) else { throw CareError(.internalError, "stored sex is not valid") }
        return PatientView(
            id: id, version: try row.int("version"), lastName: try open(row, .patientLastName, id),
            firstName: try open(row, .patientFirstName, id), birthDate: try open(row, .patientBirthDate, id), sex: sex,
            ins: try openOptional(row, .patientINS, id), createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
    }

    /// Changes identity fields, writing a new version.
    public func updatePatient(_ id: UUID, _ patch: PatientPatch, by principal: Principal, on connection: isolated Connection) throws -> PatientView {
        try connection.query("SELECT 1 FROM care.patients WHERE id = $1 FOR UPDATE", [id])
        let before = try patient(id, on: connection)
        var after = before
        if let value = patch.lastName { after.lastName = try Validate.name(value, field: "last_name") }
        if let value = patch.firstName { after.firstName = try Validate.name(value, field: "first_name") }
        if let value = patch.birthDate { after.birthDate = try Validate.birthDate(value) }
        if let value = patch.sex { after.sex = value }
        if let value = patch.ins { after.ins = try Validate.ins(value) }
        let changed = try Self.changedFields(before, after)
        guard !changed.isEmpty else { return before }
        if let ins = after.ins, ins != before.ins {
            let match = try anyToken("search_ins", from: 2) { try insToken(ins, keyID: $0) }
            let taken = try !connection.query("SELECT 1 FROM care.patients WHERE id <> $1 AND \(match.sql)", [id] + match.tokens).rows.isEmpty
            try requireCurrentBlindKeys(on: connection)
            if taken { throw CareError(.conflict, "a patient with this INS is already registered") }
        }
        let keyID = try index.primaryKeyID()
        let now = Date()
        after.version = before.version + 1
        after.updatedAt = now
        try connection.query(
            """
            UPDATE care.patients SET version = $2, last_name = $3, first_name = $4, birth_date = $5, sex = $6, ins = $7,
                search_name = $8, search_ins = $9, blind_key_id = $10, updated_at = $11, updated_by = $12
            WHERE id = $1
            """,
            [
                id, after.version, try seal(after.lastName, .patientLastName, id),
                try seal(after.firstName, .patientFirstName, id), try seal(after.birthDate, .patientBirthDate, id),
                try seal(after.sex.rawValue, .patientSex, id), try sealOptional(after.ins, .patientINS, id),
                try nameToken(lastName: after.lastName, firstName: after.firstName, birthDate: after.birthDate, keyID: keyID),
                try after.ins.map { try insToken($0, keyID: keyID) }, keyID, now, principal.userID,
            ])
        let view = try patient(id, on: connection)
        try recordVersion(.patient, id: id, version: view.version, fields: changed, state: view, by: principal, at: now, on: connection)
        return view
    }
}
