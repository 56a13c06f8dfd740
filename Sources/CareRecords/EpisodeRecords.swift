public import Foundation
public import Store

/// Care episodes: opening, team scope, changes, closing, and the export of an episode's follow-up.
extension CareStore {
    /// Opens a care episode for a patient, for the user's team unless another is named
    /// (and the rule is not team-scoped).
    public func createEpisode(
        _ input: EpisodeInput, by principal: Principal, teamScoped: Bool, on connection: isolated Connection
    ) throws -> EpisodeView {
        try requireIdentified(try patient(input.patientId, on: connection))
        let teamCode = input.team ?? principal.teamCode
        guard let teamCode, let teamID = try teamID(code: teamCode, on: connection) else {
            throw CareError(.invalidField, "team is not a known team code")
        }
        if teamScoped && teamID != principal.teamID { throw CareError(.forbidden, "you may open episodes for your own team only") }
        let id = UUID()
        let now = Date()
        try connection.query(
            """
            INSERT INTO care.episodes (id, version, patient_id, team_id, arrival_at, arrival_mode, reason, location, box_number, worrying,
                accompanied, box_status, imaging_status, imaging_note, lab_status, lab_note, psychiatric_care, activity_status, status,
                created_at, created_by, updated_at, updated_by)
            VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 'open', $18, $19, $18, $19)
            """,
            [
                id, input.patientId, teamID, try input.arrivalAt.map { try Validate.arrival($0, field: "arrival_at", now: now) } ?? now,
                input.arrivalMode.rawValue,
                try seal(try Validate.text(input.reason, field: "reason", limit: 2000), .episodeReason, id),
                try input.location.map { try Validate.label($0, field: "location") },
                try input.boxNumber.map { try Validate.label($0, field: "box_number") }, input.worrying ?? false, input.accompanied ?? false,
                (input.boxStatus ?? .notNeeded).rawValue, (input.imagingStatus ?? .notRequested).rawValue,
                try sealOptional(try input.imagingNote.map { try Validate.text($0, field: "imaging_note", limit: 1000) }, .episodeImagingNote, id),
                (input.labStatus ?? .notRequested).rawValue,
                try sealOptional(try input.labNote.map { try Validate.text($0, field: "lab_note", limit: 1000) }, .episodeLabNote, id),
                input.psychiatricCare?.rawValue,
                try sealOptional(try input.activityStatus.map { try Validate.text($0, field: "activity_status", limit: 200) }, .episodeActivityStatus, id),
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
        func decode<Value: RawRepresentable>(_ column: String) throws -> Value where Value.RawValue == String {
            guard let value = Value(rawValue: try row.string(column)) else { throw CareError(.internalError, "stored \(column) is not valid") }
            return value
        }
        let shared = try row.string("shared")
        return EpisodeView(
            id: id, version: try row.int("version"), patientId: try row.uuid("patient_id"), team: try row.string("team_code"),
            sharedWith: shared.isEmpty ? [] : shared.split(separator: ",").map(String.init), arrivalAt: try row.date("arrival_at"),
            arrivalMode: try decode("arrival_mode"), reason: try openOptional(row, .episodeReason, id), location: try row.optionalString("location"),
            boxNumber: try row.optionalString("box_number"), worrying: try row.bool("worrying"), accompanied: try row.bool("accompanied"),
            boxStatus: try decode("box_status"), imagingStatus: try decode("imaging_status"),
            imagingNote: try openOptional(row, .episodeImagingNote, id), labStatus: try decode("lab_status"),
            labNote: try openOptional(row, .episodeLabNote, id),
            psychiatricCare: try row.optionalString("psychiatric_care").flatMap(PsychiatricCare.init(rawValue:)),
            activityStatus: try openOptional(row, .episodeActivityStatus, id), status: try row.string("status"),
            closedAt: try row.optionalDate("closed_at"), timeInCareSeconds: try row.int("seconds"), updatedAt: try row.date("updated_at"),
            pseudonymisedAt: try row.optionalDate("pseudonymised_at"))
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
        try requireIdentified(before)
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
        try requireIdentified(before)
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
        let now = Date()
        try connection.query(
            """
            UPDATE care.episodes SET version = version + 1, reason = $2, location = $3, box_number = $4, worrying = $5, accompanied = $6,
                box_status = $7, imaging_status = $8, imaging_note = $9, lab_status = $10, lab_note = $11, psychiatric_care = $12,
                activity_status = $13, status = $14, closed_at = $15, updated_at = $16, updated_by = $17
            WHERE id = $1
            """,
            [
                id, try sealOptional(after.reason, .episodeReason, id), after.location, after.boxNumber, after.worrying, after.accompanied,
                after.boxStatus.rawValue, after.imagingStatus.rawValue, try sealOptional(after.imagingNote, .episodeImagingNote, id),
                after.labStatus.rawValue, try sealOptional(after.labNote, .episodeLabNote, id), after.psychiatricCare?.rawValue,
                try sealOptional(after.activityStatus, .episodeActivityStatus, id), after.status, after.closedAt, now, principal.userID,
            ])
        let view = try episodeRecord(id, on: connection)
        try recordVersion(.episode, id: id, version: view.version, fields: changed, state: view, by: principal, at: now, on: connection)
        return view
    }

    /// Refuses any change to an episode whose text was destroyed with its patient's pseudonymisation.
    /// - Throws: ``CareError/Code/pseudonymised``.
    func requireIdentified(_ view: EpisodeView) throws {
        guard view.pseudonymisedAt == nil else {
            throw CareError(.pseudonymised, "this episode was pseudonymised at the end of its retention term and cannot be changed")
        }
    }

    /// The follow-up of an episode for export.
    public func export(episodeID: UUID, by principal: Principal, teamScoped: Bool, on connection: isolated Connection) throws -> EpisodeExport {
        let episode = try episode(episodeID, for: principal, teamScoped: teamScoped, on: connection)
        return EpisodeExport(
            exportedAt: Date(), exportedBy: principal.username, patient: try patient(episode.patientId, on: connection), episode: episode,
            transmissions: try transmissions(episodeID: episodeID, for: principal, teamScoped: teamScoped, on: connection))
    }
}
