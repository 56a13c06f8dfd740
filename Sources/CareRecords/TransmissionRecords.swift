public import Foundation
public import Store

/// Transmissions written on an episode, and their retraction.
extension CareStore {
    /// Writes a transmission on an episode; addressing it to another team shares the episode with that team.
    public func createTransmission(
        episodeID: UUID, _ input: TransmissionInput, by principal: Principal, teamScoped: Bool, on connection: isolated Connection
    ) throws -> TransmissionView {
        let episode = try episode(episodeID, for: principal, teamScoped: teamScoped, on: connection)
        try requireIdentified(episode)
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
        let checklistJSON = checklist.isEmpty ? nil : String(decoding: try CareJSON.encoder().encode(checklist), as: UTF8.self)
        try connection.query(
            """
            INSERT INTO care.transmissions (id, version, episode_id, author_id, author_team_id, addressed_team_id, category, body, checklist, written_at)
            VALUES ($1, 1, $2, $3, $4, $5::uuid, $6, $7, $8, $9)
            """,
            [
                id, episodeID, principal.userID, authorTeam, addressedID, (input.category ?? .observation).rawValue,
                try seal(try Validate.text(input.body, field: "body", limit: 10_000), .transmissionBody, id),
                try sealOptional(checklistJSON, .transmissionChecklist, id), now,
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
        let checklist = try openOptional(row, .transmissionChecklist, id).map {
            try CareJSON.decoder().decode([ChecklistItem].self, from: Data($0.utf8))
        }
        return TransmissionView(
            id: id, version: try row.int("version"), episodeId: try row.uuid("episode_id"), author: try row.string("username"),
            authorTeam: try row.string("author_team"), addressedTeam: try row.optionalString("addressed_team"),
            category: TransmissionCategory(rawValue: try row.string("category")) ?? .observation, body: try openOptional(row, .transmissionBody, id),
            checklist: checklist ?? [], writtenAt: try row.date("written_at"), retractedAt: try row.optionalDate("retracted_at"),
            pseudonymisedAt: try row.optionalDate("pseudonymised_at"))
    }

    /// Retracts a transmission written in error: it stays, marked, with a new version.
    /// - Returns: the transmission and its episode's patient.
    public func retractTransmission(
        _ id: UUID, by principal: Principal, teamScoped: Bool, on connection: isolated Connection
    ) throws -> (TransmissionView, UUID) {
        let before = try transmission(id, on: connection)
        let episode = try episode(before.episodeId, for: principal, teamScoped: teamScoped, on: connection)
        try requireIdentified(episode)
        guard before.retractedAt == nil else { throw CareError(.conflict, "the transmission is already retracted") }
        let now = Date()
        try connection.query(
            "UPDATE care.transmissions SET version = version + 1, retracted_at = $2, retracted_by = $3 WHERE id = $1", [id, now, principal.userID])
        let after = try transmission(id, on: connection)
        try recordVersion(.transmission, id: id, version: after.version, fields: ["retracted_at"], state: after, by: principal, at: now, on: connection)
        return (after, episode.patientId)
    }
}
