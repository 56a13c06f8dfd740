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

    /// One patient; a pseudonymised one as what is left of it (pseudonym, years, sex).
    public func patient(_ id: UUID, on connection: isolated Connection) throws -> PatientView {
        guard let row = try connection.query("SELECT * FROM care.patients WHERE id = $1", [id]).singleRow() else {
            throw CareError(.notFound, "no such patient")
        }
        guard let sex = Sex(rawValue: try open(row, .patientSex, id)) else { throw CareError(.internalError, "stored sex is not valid") }
        return PatientView(
            id: id, version: try row.int("version"), lastName: try openOptional(row, .patientLastName, id),
            firstName: try openOptional(row, .patientFirstName, id), birthDate: try openOptional(row, .patientBirthDate, id), sex: sex,
            ins: try openOptional(row, .patientINS, id), dateOfDeath: try openOptional(row, .patientDateOfDeath, id), createdAt: try row.date("created_at"),
            updatedAt: try row.date("updated_at"), pseudonymisedAt: try row.optionalDate("pseudonymised_at"), pseudonym: try row.optionalString("pseudonym"),
            birthYear: try row.optionalInt64("birth_year").map(Int.init), deathYear: try row.optionalInt64("death_year").map(Int.init))
    }

    /// Refuses any change to a patient whose record was pseudonymised.
    /// - Throws: ``CareError/Code/pseudonymised``.
    func requireIdentified(_ view: PatientView) throws {
        guard view.pseudonymisedAt == nil else {
            throw CareError(.pseudonymised, "this patient's record was pseudonymised at the end of its retention term and cannot be changed")
        }
    }

    /// Changes identity fields, writing a new version.
    public func updatePatient(_ id: UUID, _ patch: PatientPatch, by principal: Principal, on connection: isolated Connection) throws -> PatientView {
        try connection.query("SELECT 1 FROM care.patients WHERE id = $1 FOR UPDATE", [id])
        let before = try patient(id, on: connection)
        try requireIdentified(before)
        guard let lastName = before.lastName, let firstName = before.firstName, let birthDate = before.birthDate else {
            throw CareError(.internalError, "an identified patient lacks a name or birth date")
        }
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
        let (newLast, newFirst, newBirth) = (after.lastName ?? lastName, after.firstName ?? firstName, after.birthDate ?? birthDate)
        try connection.query(
            """
            UPDATE care.patients SET version = $2, last_name = $3, first_name = $4, birth_date = $5, sex = $6, ins = $7,
                search_name = $8, search_ins = $9, blind_key_id = $10, updated_at = $11, updated_by = $12
            WHERE id = $1
            """,
            [
                id, after.version, try seal(newLast, .patientLastName, id),
                try seal(newFirst, .patientFirstName, id), try seal(newBirth, .patientBirthDate, id),
                try seal(after.sex.rawValue, .patientSex, id), try sealOptional(after.ins, .patientINS, id),
                try nameToken(lastName: newLast, firstName: newFirst, birthDate: newBirth, keyID: keyID),
                try after.ins.map { try insToken($0, keyID: keyID) }, keyID, now, principal.userID,
            ])
        let view = try patient(id, on: connection)
        try recordVersion(.patient, id: id, version: view.version, fields: changed, state: view, by: principal, at: now, on: connection)
        return view
    }

    /// Records, changes or clears (nil) a patient's date of death, writing a new
    /// version: by a care user (a manager, as the access policy says) or by an
    /// operator (the DPO, through osmosectl), named in the history.
    /// - Throws: ``CareError/Code/invalidField`` for a date not written YYYY-MM-DD,
    ///   in the future, or before the birth date; ``CareError/Code/pseudonymised``.
    public func setDateOfDeath(
        _ id: UUID, to date: String?, by author: RecordAuthor, on connection: isolated Connection
    ) throws -> PatientView {
        try connection.query("SELECT 1 FROM care.patients WHERE id = $1 FOR UPDATE", [id])
        let before = try patient(id, on: connection)
        try requireIdentified(before)
        let validated = try date.map { try Validate.dateOfDeath($0, birthDate: before.birthDate ?? "") }
        guard validated != before.dateOfDeath else { return before }
        let now = Date()
        try connection.query(
            "UPDATE care.patients SET version = version + 1, date_of_death = $2, updated_at = $3, updated_by = $4 WHERE id = $1",
            [id, try sealOptional(validated, .patientDateOfDeath, id), now, author.userID])
        let view = try patient(id, on: connection)
        try recordVersion(.patient, id: id, version: view.version, fields: ["date_of_death"], state: view, by: author, at: now, on: connection)
        return view
    }
}
