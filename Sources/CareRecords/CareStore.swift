import Cryptography
public import Foundation
public import Keyring
public import Store

/// Every read and write of the care tables. Each method runs inside the caller's
/// transaction on the connection's own thread (`isolated Connection`), so the
/// access event the caller adds commits with it or not at all.
///
/// Identity fields and free text are encrypted with ``Keyring/ColumnCipher`` and
/// bound to their table, column and row; searches go through blind indexes.
public struct CareStore: Sendable {
    let ring: DataKeyRing
    let cipher: ColumnCipher
    let index: BlindIndex

    /// Uses the data keys of `ring`.
    public init(ring: DataKeyRing) {
        self.ring = ring
        cipher = ColumnCipher(ring: ring)
        index = BlindIndex(ring: ring)
    }

    // MARK: Encryption helpers

    func seal(_ text: String, _ table: String, _ column: String, _ id: UUID) throws -> [UInt8] {
        try cipher.encrypt(text, for: .init(table: table, column: column, rowID: id.uuidString.lowercased()))
    }

    func sealOptional(_ text: String?, _ table: String, _ column: String, _ id: UUID) throws -> [UInt8]? {
        try text.map { try seal($0, table, column, id) }
    }

    func open(_ row: Row, _ column: String, _ table: String, _ id: UUID) throws -> String {
        try cipher.decryptString(try row.bytes(column), at: .init(table: table, column: column, rowID: id.uuidString.lowercased()))
    }

    func openOptional(_ row: Row, _ column: String, _ table: String, _ id: UUID) throws -> String? {
        guard let stored = try row.optionalBytes(column) else { return nil }
        return try cipher.decryptString(stored, at: .init(table: table, column: column, rowID: id.uuidString.lowercased()))
    }

    func nameToken(lastName: String, firstName: String, birthDate: String, keyID: Int) throws -> [UInt8] {
        try PatientSearchTokens.name(lastName: lastName, firstName: firstName, birthDate: birthDate, index: index, keyID: keyID)
    }

    func insToken(_ ins: String, keyID: Int) throws -> [UInt8] {
        try PatientSearchTokens.ins(ins, index: index, keyID: keyID)
    }

    /// `column IN (…)` over the tokens of a value under every blind-index key a
    /// record's tokens may be under (two during a rotation), as parameters from
    /// `$first` on; then ``requireCurrentBlindKeys(on:)`` after the query.
    func anyToken(_ column: String, from first: Int, _ make: (Int) throws -> [UInt8]) throws -> (sql: String, tokens: [[UInt8]]) {
        let tokens = try ring.readableIDs(for: .blindIndex).map(make)
        guard !tokens.isEmpty else { throw KeyringError.noPrimary(.blindIndex) }
        return ("\(column) IN (\(tokens.indices.map { "$\($0 + first)" }.joined(separator: ", ")))", tokens)
    }

    /// Refuses a search answered with a stale keyring: once this query (run after the
    /// search, so with a later snapshot) sees no blind-index key the ring lacks, no
    /// token the search could see was under a key it did not ask for.
    func requireCurrentBlindKeys(on connection: isolated Connection) throws {
        let ids = try connection.query(
            "SELECT id FROM keys.data_keys WHERE purpose = 'blind-index' AND state IN ('pending', 'primary', 'decrypt-only')"
        ).rows.map { try $0.int("id") }
        guard ring.holds(ids) else { throw KeyringError.staleRing("a blind-index key was added since the keyring was loaded") }
    }

    // MARK: Patients

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
                id, try seal(lastName, "care.patients", "last_name", id), try seal(firstName, "care.patients", "first_name", id),
                try seal(birthDate, "care.patients", "birth_date", id), try seal(input.sex.rawValue, "care.patients", "sex", id),
                try sealOptional(ins, "care.patients", "ins", id),
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
        guard let sex = Sex(rawValue: try open(row, "sex", table, id)) else { throw CareError(.internalError, "stored sex is not valid") }
        return PatientView(
            id: id, version: try row.int("version"), lastName: try open(row, "last_name", table, id),
            firstName: try open(row, "first_name", table, id), birthDate: try open(row, "birth_date", table, id), sex: sex,
            ins: try openOptional(row, "ins", table, id), createdAt: try row.date("created_at"), updatedAt: try row.date("updated_at"))
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
                id, after.version, try seal(after.lastName, "care.patients", "last_name", id),
                try seal(after.firstName, "care.patients", "first_name", id), try seal(after.birthDate, "care.patients", "birth_date", id),
                try seal(after.sex.rawValue, "care.patients", "sex", id), try sealOptional(after.ins, "care.patients", "ins", id),
                try nameToken(lastName: after.lastName, firstName: after.firstName, birthDate: after.birthDate, keyID: keyID),
                try after.ins.map { try insToken($0, keyID: keyID) }, keyID, now, principal.userID,
            ])
        let view = try patient(id, on: connection)
        try recordVersion(.patient, id: id, version: view.version, fields: changed, state: view, by: principal, at: now, on: connection)
        return view
    }

    // MARK: Episodes

    /// Opens a care episode for a patient, for the user's team unless another is named
    /// (and the rule is not team-scoped).
    public func createEpisode(
        _ input: EpisodeInput, by principal: Principal, teamScoped: Bool, on connection: isolated Connection
    ) throws -> EpisodeView {
        _ = try patient(input.patientId, on: connection)
        let teamCode = input.team ?? principal.teamCode
        guard let teamCode, let teamID = try teamID(code: teamCode, on: connection) else {
            throw CareError(.invalidField, "team is not a known team code")
        }
        if teamScoped && teamID != principal.teamID { throw CareError(.forbidden, "you may open episodes for your own team only") }
        let id = UUID()
        let now = Date()
        let table = "care.episodes"
        try connection.query(
            """
            INSERT INTO care.episodes (id, version, patient_id, team_id, arrival_at, arrival_mode, reason, location, box_number, worrying,
                accompanied, box_status, imaging_status, imaging_note, lab_status, lab_note, psychiatric_care, activity_status, status,
                created_at, created_by, updated_at, updated_by)
            VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 'open', $18, $19, $18, $19)
            """,
            [
                id, input.patientId, teamID, input.arrivalAt ?? now, input.arrivalMode.rawValue,
                try seal(try Validate.text(input.reason, field: "reason", limit: 2000), table, "reason", id),
                try input.location.map { try Validate.label($0, field: "location") },
                try input.boxNumber.map { try Validate.label($0, field: "box_number") }, input.worrying ?? false, input.accompanied ?? false,
                (input.boxStatus ?? .notNeeded).rawValue, (input.imagingStatus ?? .notRequested).rawValue,
                try sealOptional(try input.imagingNote.map { try Validate.text($0, field: "imaging_note", limit: 1000) }, table, "imaging_note", id),
                (input.labStatus ?? .notRequested).rawValue,
                try sealOptional(try input.labNote.map { try Validate.text($0, field: "lab_note", limit: 1000) }, table, "lab_note", id),
                input.psychiatricCare?.rawValue,
                try sealOptional(try input.activityStatus.map { try Validate.text($0, field: "activity_status", limit: 200) }, table, "activity_status", id),
                now, principal.userID,
            ])
        let view = try episodeRecord(id, on: connection)
        try recordVersion(.episode, id: id, version: 1, fields: EpisodeInput.fields.sorted(), state: view, by: principal, at: now, on: connection)
        return view
    }

    /// One episode, if the user may see it.
    public func episode(_ id: UUID, for principal: Principal, teamScoped: Bool, on connection: isolated Connection) throws -> EpisodeView {
        let view = try episodeRecord(id, on: connection)
        try checkScope(view, principal, teamScoped)
        return view
    }

    /// Checks that a team-scoped user may see `view` (its own team's or shared with it).
    /// - Throws: ``CareError/Code/forbidden``.
    public func checkScope(_ view: EpisodeView, _ principal: Principal, _ teamScoped: Bool) throws {
        guard teamScoped else { return }
        guard let team = principal.teamCode, view.team == team || view.sharedWith.contains(team) else {
            throw CareError(.forbidden, "this episode belongs to another team and is not shared with yours")
        }
    }

    func episodeRecord(_ id: UUID, on connection: isolated Connection) throws -> EpisodeView {
        let rows = try connection.query(
            """
            SELECT e.*, t.code AS team_code,
                   coalesce((SELECT string_agg(s.code, ',' ORDER BY s.code) FROM care.episode_teams et
                             JOIN care.teams s ON s.id = et.team_id WHERE et.episode_id = e.id), '') AS shared,
                   extract(epoch FROM coalesce(e.closed_at, clock_timestamp()) - e.arrival_at)::bigint AS seconds
            FROM care.episodes e JOIN care.teams t ON t.id = e.team_id WHERE e.id = $1
            """, [id]).rows
        guard let row = rows.first else { throw CareError(.notFound, "no such episode") }
        return try episodeView(row)
    }

    func episodeView(_ row: Row) throws -> EpisodeView {
        let id = try row.uuid("id")
        let table = "care.episodes"
        func decode<Value: RawRepresentable>(_ column: String) throws -> Value where Value.RawValue == String {
            guard let value = Value(rawValue: try row.string(column)) else { throw CareError(.internalError, "stored \(column) is not valid") }
            return value
        }
        let shared = try row.string("shared")
        return EpisodeView(
            id: id, version: try row.int("version"), patientId: try row.uuid("patient_id"), team: try row.string("team_code"),
            sharedWith: shared.isEmpty ? [] : shared.split(separator: ",").map(String.init), arrivalAt: try row.date("arrival_at"),
            arrivalMode: try decode("arrival_mode"), reason: try open(row, "reason", table, id), location: try row.optionalString("location"),
            boxNumber: try row.optionalString("box_number"), worrying: try row.bool("worrying"), accompanied: try row.bool("accompanied"),
            boxStatus: try decode("box_status"), imagingStatus: try decode("imaging_status"),
            imagingNote: try openOptional(row, "imaging_note", table, id), labStatus: try decode("lab_status"),
            labNote: try openOptional(row, "lab_note", table, id),
            psychiatricCare: try row.optionalString("psychiatric_care").flatMap(PsychiatricCare.init(rawValue:)),
            activityStatus: try openOptional(row, "activity_status", table, id), status: try row.string("status"),
            closedAt: try row.optionalDate("closed_at"), timeInCareSeconds: try row.int("seconds"), updatedAt: try row.date("updated_at"))
    }

    /// Episodes visible to the user, filtered by team code and state (`open`, `closed`, `all`).
    public func listEpisodes(
        team: String?, state: String, for principal: Principal, teamScoped: Bool, on connection: isolated Connection
    ) throws -> [EpisodeView] {
        guard ["open", "closed", "all"].contains(state) else { throw CareError(.invalidQuery, "state must be open, closed or all") }
        if let team, try teamID(code: team, on: connection) == nil { throw CareError(.invalidQuery, "team is not a known team code") }
        let rows = try connection.query(
            """
            SELECT e.id FROM care.episodes e JOIN care.teams t ON t.id = e.team_id
            WHERE ($1 = 'all' OR e.status = $1)
              AND ($2::text IS NULL OR t.code = $2 OR EXISTS (SELECT 1 FROM care.episode_teams et JOIN care.teams s ON s.id = et.team_id
                                                            WHERE et.episode_id = e.id AND s.code = $2))
              AND (NOT $3 OR e.team_id = $4::uuid OR EXISTS (SELECT 1 FROM care.episode_teams et WHERE et.episode_id = e.id AND et.team_id = $4::uuid))
            ORDER BY e.arrival_at
            """, [state, team, teamScoped, principal.teamID]).rows
        return try rows.map { try episodeRecord(try $0.uuid("id"), on: connection) }
    }

    /// Changes an open episode's fields, writing a new version.
    public func updateEpisode(
        _ id: UUID, _ patch: EpisodePatch, by principal: Principal, teamScoped: Bool, on connection: isolated Connection
    ) throws -> EpisodeView {
        try connection.query("SELECT 1 FROM care.episodes WHERE id = $1 FOR UPDATE", [id])
        let before = try episode(id, for: principal, teamScoped: teamScoped, on: connection)
        guard before.status == "open" else { throw CareError(.conflict, "a closed episode cannot be changed") }
        var after = before
        if let value = patch.reason { after.reason = try Validate.text(value, field: "reason", limit: 2000) }
        if let value = patch.location { after.location = try Validate.label(value, field: "location") }
        if let value = patch.boxNumber { after.boxNumber = try Validate.label(value, field: "box_number") }
        if let value = patch.worrying { after.worrying = value }
        if let value = patch.accompanied { after.accompanied = value }
        if let value = patch.boxStatus { after.boxStatus = value }
        if let value = patch.imagingStatus { after.imagingStatus = value }
        if let value = patch.imagingNote { after.imagingNote = try Validate.text(value, field: "imaging_note", limit: 1000) }
        if let value = patch.labStatus { after.labStatus = value }
        if let value = patch.labNote { after.labNote = try Validate.text(value, field: "lab_note", limit: 1000) }
        if let value = patch.psychiatricCare { after.psychiatricCare = value }
        if let value = patch.activityStatus { after.activityStatus = try Validate.text(value, field: "activity_status", limit: 200, required: false) }
        return try saveEpisode(before: before, after: after, by: principal, on: connection)
    }

    /// Closes an episode.
    public func closeEpisode(_ id: UUID, by principal: Principal, teamScoped: Bool, on connection: isolated Connection) throws -> EpisodeView {
        try connection.query("SELECT 1 FROM care.episodes WHERE id = $1 FOR UPDATE", [id])
        let before = try episode(id, for: principal, teamScoped: teamScoped, on: connection)
        guard before.status == "open" else { throw CareError(.conflict, "the episode is already closed") }
        var after = before
        after.status = "closed"
        after.closedAt = Date()
        return try saveEpisode(before: before, after: after, by: principal, on: connection)
    }

    private func saveEpisode(before: EpisodeView, after: EpisodeView, by principal: Principal, on connection: isolated Connection) throws -> EpisodeView {
        let changed = try Self.changedFields(before, after)
        guard !changed.isEmpty else { return before }
        let id = before.id
        let table = "care.episodes"
        let now = Date()
        try connection.query(
            """
            UPDATE care.episodes SET version = version + 1, reason = $2, location = $3, box_number = $4, worrying = $5, accompanied = $6,
                box_status = $7, imaging_status = $8, imaging_note = $9, lab_status = $10, lab_note = $11, psychiatric_care = $12,
                activity_status = $13, status = $14, closed_at = $15, updated_at = $16, updated_by = $17
            WHERE id = $1
            """,
            [
                id, try seal(after.reason, table, "reason", id), after.location, after.boxNumber, after.worrying, after.accompanied,
                after.boxStatus.rawValue, after.imagingStatus.rawValue, try sealOptional(after.imagingNote, table, "imaging_note", id),
                after.labStatus.rawValue, try sealOptional(after.labNote, table, "lab_note", id), after.psychiatricCare?.rawValue,
                try sealOptional(after.activityStatus, table, "activity_status", id), after.status, after.closedAt, now, principal.userID,
            ])
        let view = try episodeRecord(id, on: connection)
        try recordVersion(.episode, id: id, version: view.version, fields: changed, state: view, by: principal, at: now, on: connection)
        return view
    }

    // MARK: Transmissions

    /// Writes a transmission on an episode; addressing it to another team shares the episode with that team.
    public func createTransmission(
        episodeID: UUID, _ input: TransmissionInput, by principal: Principal, teamScoped: Bool, on connection: isolated Connection
    ) throws -> TransmissionView {
        let episode = try episode(episodeID, for: principal, teamScoped: teamScoped, on: connection)
        guard episode.status == "open" else { throw CareError(.conflict, "a closed episode takes no more transmissions") }
        guard let authorTeam = principal.teamID else { throw CareError(.forbidden, "only a member of a team writes transmissions") }
        var addressedID: UUID?
        if let code = input.addressedTeam {
            guard let found = try teamID(code: code, on: connection) else { throw CareError(.invalidField, "addressed_team is not a known team code") }
            addressedID = found
        }
        let checklist = input.checklist ?? []
        guard checklist.count <= 50 else { throw CareError(.invalidField, "checklist has more than 50 items") }
        for item in checklist { _ = try Validate.text(item.label, field: "checklist.label", limit: 200) }
        let id = UUID()
        let now = Date()
        let table = "care.transmissions"
        let checklistJSON = checklist.isEmpty ? nil : String(decoding: try CareJSON.encoder().encode(checklist), as: UTF8.self)
        try connection.query(
            """
            INSERT INTO care.transmissions (id, version, episode_id, author_id, author_team_id, addressed_team_id, category, body, checklist, written_at)
            VALUES ($1, 1, $2, $3, $4, $5::uuid, $6, $7, $8, $9)
            """,
            [
                id, episodeID, principal.userID, authorTeam, addressedID, (input.category ?? .observation).rawValue,
                try seal(try Validate.text(input.body, field: "body", limit: 10_000), table, "body", id),
                try sealOptional(checklistJSON, table, "checklist", id), now,
            ])
        if let addressedID {
            try connection.query(
                "INSERT INTO care.episode_teams (episode_id, team_id) SELECT $1, $2 WHERE $2 <> (SELECT team_id FROM care.episodes WHERE id = $1) ON CONFLICT DO NOTHING",
                [episodeID, addressedID])
        }
        let view = try transmission(id, on: connection)
        try recordVersion(.transmission, id: id, version: 1, fields: TransmissionInput.fields.sorted(), state: view, by: principal, at: now, on: connection)
        return view
    }

    /// The transmissions of an episode the user may see, oldest first.
    public func transmissions(
        episodeID: UUID, for principal: Principal, teamScoped: Bool, on connection: isolated Connection
    ) throws -> [TransmissionView] {
        _ = try episode(episodeID, for: principal, teamScoped: teamScoped, on: connection)
        let rows = try connection.query("SELECT id FROM care.transmissions WHERE episode_id = $1 ORDER BY written_at, id", [episodeID]).rows
        return try rows.map { try transmission(try $0.uuid("id"), on: connection) }
    }

    func transmission(_ id: UUID, on connection: isolated Connection) throws -> TransmissionView {
        let rows = try connection.query(
            """
            SELECT tr.*, u.username, at.code AS author_team, dt.code AS addressed_team FROM care.transmissions tr
            JOIN care.users u ON u.id = tr.author_id JOIN care.teams at ON at.id = tr.author_team_id
            LEFT JOIN care.teams dt ON dt.id = tr.addressed_team_id WHERE tr.id = $1
            """, [id]).rows
        guard let row = rows.first else { throw CareError(.notFound, "no such transmission") }
        let table = "care.transmissions"
        let checklist = try openOptional(row, "checklist", table, id).map {
            try CareJSON.decoder().decode([ChecklistItem].self, from: Data($0.utf8))
        }
        return TransmissionView(
            id: id, version: try row.int("version"), episodeId: try row.uuid("episode_id"), author: try row.string("username"),
            authorTeam: try row.string("author_team"), addressedTeam: try row.optionalString("addressed_team"),
            category: TransmissionCategory(rawValue: try row.string("category")) ?? .observation, body: try open(row, "body", table, id),
            checklist: checklist ?? [], writtenAt: try row.date("written_at"), retractedAt: try row.optionalDate("retracted_at"))
    }

    /// Retracts a transmission written in error: it stays, marked, with a new version.
    /// - Returns: the transmission and its episode's patient.
    public func retractTransmission(
        _ id: UUID, by principal: Principal, teamScoped: Bool, on connection: isolated Connection
    ) throws -> (TransmissionView, UUID) {
        let before = try transmission(id, on: connection)
        let episode = try episode(before.episodeId, for: principal, teamScoped: teamScoped, on: connection)
        guard before.retractedAt == nil else { throw CareError(.conflict, "the transmission is already retracted") }
        let now = Date()
        try connection.query(
            "UPDATE care.transmissions SET version = version + 1, retracted_at = $2, retracted_by = $3 WHERE id = $1", [id, now, principal.userID])
        let after = try transmission(id, on: connection)
        try recordVersion(.transmission, id: id, version: after.version, fields: ["retracted_at"], state: after, by: principal, at: now, on: connection)
        return (after, episode.patientId)
    }

    /// The follow-up of an episode for export.
    public func export(episodeID: UUID, by principal: Principal, teamScoped: Bool, on connection: isolated Connection) throws -> EpisodeExport {
        let episode = try episode(episodeID, for: principal, teamScoped: teamScoped, on: connection)
        return EpisodeExport(
            exportedAt: Date(), exportedBy: principal.username, patient: try patient(episode.patientId, on: connection), episode: episode,
            transmissions: try transmissions(episodeID: episodeID, for: principal, teamScoped: teamScoped, on: connection))
    }

    // MARK: History

    /// The kinds of versioned records.
    public enum RecordType: String, Sendable { case patient, episode, transmission }

    func recordVersion(
        _ type: RecordType, id: UUID, version: Int, fields: [String], state: some Encodable, by principal: Principal, at time: Date,
        on connection: isolated Connection
    ) throws {
        let versionID = UUID()
        let snapshot = try CareJSON.encoder().encode(state)
        let sealed = try cipher.encrypt(Array(snapshot), for: .init(table: "care.record_versions", column: "snapshot", rowID: versionID.uuidString.lowercased()))
        try connection.query(
            "INSERT INTO care.record_versions (id, record_type, record_id, version, changed_at, changed_by, changed_fields, snapshot) VALUES ($1, $2, $3, $4, $5, $6, $7::text[], $8)",
            [versionID, type.rawValue, id, version, time, principal.userID, "{" + fields.joined(separator: ",") + "}", sealed])
    }

    /// Every version of a record, oldest first, each with who, when, which fields and the state after.
    public func history(_ type: RecordType, id: UUID, on connection: isolated Connection) throws -> [VersionView] {
        let rows = try connection.query(
            """
            SELECT v.id, v.version, v.changed_at, u.username, array_to_string(v.changed_fields, ',') AS fields, v.snapshot
            FROM care.record_versions v JOIN care.users u ON u.id = v.changed_by
            WHERE v.record_type = $1 AND v.record_id = $2 ORDER BY v.version
            """, [type.rawValue, id]).rows
        return try rows.map { row in
            let versionID = try row.uuid("id")
            let plain = try cipher.decrypt(try row.bytes("snapshot"), at: .init(table: "care.record_versions", column: "snapshot", rowID: versionID.uuidString.lowercased()))
            let state = try CareJSON.decoder().decode([String: JSONValue].self, from: Data(plain))
            return VersionView(
                version: try row.int("version"), changedAt: try row.date("changed_at"), changedBy: try row.string("username"),
                changedFields: try row.string("fields").split(separator: ",").map(String.init), state: state)
        }
    }

    static func changedFields(_ before: some Encodable, _ after: some Encodable) throws -> [String] {
        let encoder = CareJSON.encoder()
        let decoder = CareJSON.decoder()
        let old = try decoder.decode([String: JSONValue].self, from: try encoder.encode(before))
        let new = try decoder.decode([String: JSONValue].self, from: try encoder.encode(after))
        let ignored: Set<String> = ["version", "updated_at", "time_in_care_seconds"]
        return Set(old.keys).union(new.keys).subtracting(ignored).filter { old[$0] != new[$0] }.sorted()
    }

    // MARK: Teams and users

    func teamID(code: String, on connection: isolated Connection) throws -> UUID? {
        try connection.query("SELECT id FROM care.teams WHERE code = $1", [code]).rows.first.map { try $0.uuid("id") }
    }

    /// Every account, without password hashes.
    public func users(on connection: isolated Connection) throws -> [UserView] { try UserDirectory.list(on: connection) }
}

/// The blind-index tokens of a patient record, as osmose-care writes them and
/// osmose-keyd rewrites them under a new key.
public enum PatientSearchTokens {
    /// The token of last name + first name + birth date under blind-index key `keyID`.
    public static func name(lastName: String, firstName: String, birthDate: String, index: BlindIndex, keyID: Int) throws -> [UInt8] {
        try index.token(domain: "patient.name-birth", parts: [lastName, firstName, birthDate], keyID: keyID)
    }

    /// The token of an INS under blind-index key `keyID`.
    public static func ins(_ ins: String, index: BlindIndex, keyID: Int) throws -> [UInt8] {
        try index.token(domain: "patient.ins", parts: [ins], keyID: keyID)
    }
}
