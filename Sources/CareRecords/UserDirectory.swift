import Foundation
public import Store

/// Accounts as the administrator sees them (never the password hashes), and team codes.
public enum UserDirectory {
    /// The id of the team whose code is `code`, or nil when there is none.
    static func teamID(code: String, on connection: isolated Connection) throws -> UUID? {
        try connection.query("SELECT id FROM care.teams WHERE code = $1", [code]).rows.first.map { try $0.uuid("id") }
    }

    /// Every account.
    public static func list(on connection: isolated Connection) throws -> [UserView] {
        try connection.query(
            """
            SELECT u.id, u.username, u.display_name, u.role, t.code AS team, u.disabled,
                   (u.locked_until IS NOT NULL AND u.locked_until > clock_timestamp()) AS locked
            FROM care.users u LEFT JOIN care.teams t ON t.id = u.team_id ORDER BY u.username
            """
        ).rows.map { row in
            UserView(
                id: try row.uuid("id"), username: try row.string("username"), displayName: try row.string("display_name"),
                role: Role(rawValue: try row.string("role")) ?? .agent, team: try row.optionalString("team"), disabled: try row.bool("disabled"),
                locked: try row.bool("locked"))
        }
    }
}
