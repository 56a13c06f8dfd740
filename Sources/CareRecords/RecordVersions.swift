public import Foundation
public import Store

/// Who changed a record: a care user through the care service, or an operator
/// (the DPO) through osmosectl, who has no care account.
public enum RecordAuthor: Sendable, Hashable {
    /// A care user.
    case user(Principal)
    /// An operator, by the identity osmosectl records (`alice@host via osmosectl …`).
    case `operator`(String)

    var userID: UUID? {
        if case .user(let principal) = self { return principal.userID }
        return nil
    }

    var operatorName: String? {
        guard case .operator(let name) = self else { return nil }
        // The column's CHECK counts code points.
        var bounded = String.UnicodeScalarView()
        bounded.append(contentsOf: name.unicodeScalars.prefix(300))
        return String(bounded)
    }
}

/// The versioned history of every record: one encrypted snapshot per change.
extension CareStore {
    /// The kinds of versioned records.
    public enum RecordType: String, Sendable { case patient, episode, transmission }

    func recordVersion(
        _ type: RecordType, id: UUID, version: Int, fields: [String], state: some Encodable, by principal: Principal, at time: Date,
        on connection: isolated Connection
    ) throws {
        try recordVersion(type, id: id, version: version, fields: fields, state: state, by: .user(principal), at: time, on: connection)
    }

    func recordVersion(
        _ type: RecordType, id: UUID, version: Int, fields: [String], state: some Encodable, by author: RecordAuthor, at time: Date,
        on connection: isolated Connection
    ) throws {
        let versionID = UUID()
        let snapshot = try CareJSON.encoder().encode(state)
        let sealed = try cipher.encrypt(Array(snapshot), for: EncryptedColumn.recordVersionSnapshot.location(rowID: versionID))
        try connection.query(
            """
            INSERT INTO care.record_versions (id, record_type, record_id, version, changed_at, changed_by, changed_by_operator, changed_fields, snapshot)
            VALUES ($1, $2, $3, $4, $5, $6::uuid, $7, $8::text[], $9)
            """,
            [versionID, type.rawValue, id, version, time, author.userID, author.operatorName, "{" + fields.joined(separator: ",") + "}", sealed])
    }

    /// Every version of a record, oldest first, each with who, when, which fields
    /// and the state after (empty once erased by pseudonymisation).
    public func history(_ type: RecordType, id: UUID, on connection: isolated Connection) throws -> [VersionView] {
        let rows = try connection.query(
            """
            SELECT v.id, v.version, v.changed_at, coalesce(u.username, v.changed_by_operator, 'dpo: subject request ' || v.subject_request_id) AS author,
                   array_to_string(v.changed_fields, ',') AS fields, v.snapshot, v.erased_at
            FROM care.record_versions v LEFT JOIN care.users u ON u.id = v.changed_by
            WHERE v.record_type = $1 AND v.record_id = $2 ORDER BY v.version
            """, [type.rawValue, id]).rows
        return try rows.map { row in
            let versionID = try row.uuid("id")
            var state: [String: JSONValue] = [:]
            if let sealed = try row.optionalBytes("snapshot") {
                let plain = try cipher.decrypt(sealed, at: EncryptedColumn.recordVersionSnapshot.location(rowID: versionID))
                state = try CareJSON.decoder().decode([String: JSONValue].self, from: Data(plain))
            }
            return VersionView(
                version: try row.int("version"), changedAt: try row.date("changed_at"), changedBy: try row.string("author"),
                changedFields: try row.string("fields").split(separator: ",").map(String.init), state: state, erasedAt: try row.optionalDate("erased_at"))
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
}
