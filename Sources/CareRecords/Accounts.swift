public import Foundation
public import Journal
public import Store

/// A care team as the administrator lists it.
public struct TeamView: Codable, Sendable, Hashable {
    /// The short code (e.g. `sau`, `epl`).
    public let code: String
    /// The display name.
    public let name: String
}

/// An account to create, its password already hashed (scrypt is slow: hash before
/// opening the transaction that creates it).
public struct NewAccount: Sendable {
    /// The login name.
    public let username: String
    /// The name shown to colleagues.
    public let displayName: String
    /// The role.
    public let role: Role
    /// The team's code; required except for an admin.
    public let teamCode: String?
    /// The password hash.
    let passwordHash: String

    /// An account whose password is hashed now with `hasher`.
    /// - Throws: ``CareError`` `.invalidField` when the password is shorter than 12 or longer than 256 characters.
    public init(username: String, displayName: String, role: Role, teamCode: String?, password: String, hasher: PasswordHasher) throws {
        self.username = username
        self.displayName = displayName
        self.role = role
        self.teamCode = teamCode
        self.passwordHash = try hasher.hash(password)
    }
}

/// The administrator's account management: teams, accounts, disabling. Every
/// change is journaled by `actor` in the caller's transaction, so that a change and
/// its event commit together.
public struct Accounts: Sendable {
    /// Who manages the accounts (for `osmosectl`, `.operator(identity, role: .sysadmin)`).
    public let actor: SystemActor

    /// Account management by `actor`.
    public init(actor: SystemActor) {
        self.actor = actor
    }

    /// Creates a team.
    /// - Returns: its id.
    /// - Throws: ``StoreError`` (SQLSTATE 23505 when the code is taken, 23514 when the code or name is malformed).
    @discardableResult
    public func createTeam(code: String, name: String, on connection: isolated Connection) throws -> UUID {
        let id = UUID()
        try connection.query("INSERT INTO care.teams (id, code, name) VALUES ($1, $2, $3)", [id, code, name])
        try journal(objectType: "team", id: id, reason: nil, on: connection)
        return id
    }

    /// Every team, by code.
    public static func teams(on connection: isolated Connection) throws -> [TeamView] {
        try connection.query("SELECT code, name FROM care.teams ORDER BY code").rows.map { TeamView(code: try $0.string("code"), name: try $0.string("name")) }
    }

    /// Creates an account.
    /// - Returns: its id.
    /// - Throws: ``CareError`` `.notFound` when its team does not exist; ``StoreError``
    ///   (SQLSTATE 23505 when the username is taken, 23514 when a field is malformed or
    ///   an agent or manager has no team).
    @discardableResult
    public func createUser(_ account: NewAccount, on connection: isolated Connection) throws -> UUID {
        var teamID: UUID?
        if let code = account.teamCode {
            guard let id = try UserDirectory.teamID(code: code, on: connection) else {
                throw CareError(.notFound, "no team with code \(code): create it with osmosectl teams add")
            }
            teamID = id
        }
        let id = UUID()
        try connection.query(
            "INSERT INTO care.users (id, username, display_name, role, team_id, password_hash) VALUES ($1, $2, $3, $4, $5::uuid, $6)",
            [id, account.username, account.displayName, account.role.rawValue, teamID, account.passwordHash])
        try journal(objectType: "user", id: id, reason: "created", on: connection)
        return id
    }

    /// Disables the account named `username` and ends its sessions; with `dryRun`,
    /// only counts them and changes (and journals) nothing.
    /// - Returns: how many sessions were open (unrevoked and unexpired).
    /// - Throws: ``CareError`` `.notFound` when there is no such account.
    public func disable(username: String, dryRun: Bool, on connection: isolated Connection) throws -> Int {
        guard let row = try connection.query("SELECT id FROM care.users WHERE username = $1 FOR UPDATE", [username]).singleRow() else {
            throw CareError(.notFound, "no user named \(username)")
        }
        let id = try row.uuid("id")
        let open = try connection.query(
            "SELECT count(*) AS n FROM care.sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > clock_timestamp()", [id]
        ).rows[0].int("n")
        guard !dryRun else { return open }
        try connection.query("UPDATE care.users SET disabled = true WHERE id = $1", [id])
        try connection.query("UPDATE care.sessions SET revoked_at = clock_timestamp() WHERE user_id = $1 AND revoked_at IS NULL", [id])
        try journal(objectType: "user", id: id, reason: "disabled", on: connection)
        return open
    }

    /// Every account (never the password hashes); the read is journaled.
    public func users(on connection: isolated Connection) throws -> [UserView] {
        let users = try UserDirectory.list(on: connection)
        try connection.record(AccessEvent.system(by: actor, action: .read, objectType: "user-list"))
        return users
    }

    /// The id of the team with this code, if any.
    /// Journals a change to a team or an account.
    private func journal(objectType: String, id: UUID, reason: String?, on connection: isolated Connection) throws {
        try connection.record(AccessEvent.system(by: actor, action: .userAdmin, objectType: objectType, objectID: id.uuidString.lowercased(), reason: reason))
    }
}
