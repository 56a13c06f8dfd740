import CareRecords
public import Foundation
public import Journal
public import Store

/// A staff account as listed (never its password hash or TOTP seed).
public struct StaffView: Codable, Sendable, Hashable {
    /// The account's id.
    public let id: UUID
    /// The login name.
    public let username: String
    /// The name shown.
    public let displayName: String
    /// The role.
    public let role: StaffRole
    /// True once a TOTP second factor is enrolled.
    public let enrolled: Bool
    /// True when disabled.
    public let disabled: Bool
    /// True while locked after failed sign-ins.
    public let locked: Bool
}

/// A staff account to create, its password already hashed (scrypt is slow: hash
/// before opening the transaction that creates it).
public struct NewStaffAccount: Sendable {
    /// The login name.
    public let username: String
    /// The name shown.
    public let displayName: String
    /// The role.
    public let role: StaffRole
    let passwordHash: String

    /// An account whose password is hashed now.
    /// - Parameters:
    ///   - username: lowercase letters, digits, dots, hyphens, underscores (2–64).
    ///   - displayName: 1–100 characters.
    ///   - role: dpo, security-officer or sysadmin.
    ///   - password: 12–256 characters.
    ///   - costExponent: log2 of scrypt's N.
    /// - Throws: ``StaffError`` `.invalidField` naming the field.
    public init(username: String, displayName: String, role: StaffRole, password: String, costExponent: Int) throws {
        guard username.range(of: "^[a-z0-9][a-z0-9._-]{1,63}$", options: .regularExpression) != nil else {
            throw StaffError(.invalidField, "the username must be 2 to 64 lowercase letters, digits, dots, hyphens or underscores")
        }
        guard (1...100).contains(displayName.unicodeScalars.count) else { throw StaffError(.invalidField, "the display name must be 1 to 100 characters") }
        guard (12...256).contains(password.count) else { throw StaffError(.invalidField, "the password must be 12 to 256 characters") }
        self.username = username
        self.displayName = displayName
        self.role = role
        self.passwordHash = try PasswordHasher(costExponent: costExponent).hash(password)
    }
}

/// The sysadmin's management of staff accounts (`osmosectl users add --role dpo…`).
/// Every change is journaled by `actor` in the caller's transaction.
public struct StaffDirectory: Sendable {
    /// Who manages the accounts.
    public let actor: SystemActor

    /// Account management by `actor`.
    public init(actor: SystemActor) { self.actor = actor }

    /// Creates a staff account; its second factor is enrolled at its first sign-in to the console.
    /// - Returns: its id.
    /// - Throws: ``StaffError`` `.invalidField` when the username is taken (by a staff or a care account).
    @discardableResult
    public func create(_ account: NewStaffAccount, on connection: isolated Connection) throws -> UUID {
        let taken = try connection.query(
            "SELECT (SELECT count(*) FROM console.staff WHERE username = $1) + (SELECT count(*) FROM care.users WHERE username = $1) AS n",
            [account.username]
        ).rows[0].int("n")
        guard taken == 0 else { throw StaffError(.invalidField, "the username \(account.username) is already taken") }
        let id = UUID()
        try connection.query(
            "INSERT INTO console.staff (id, username, display_name, role, password_hash) VALUES ($1, $2, $3, $4, $5)",
            [id, account.username, account.displayName, account.role.rawValue, account.passwordHash])
        try connection.record(
            AccessEvent.system(by: actor, action: .userAdmin, objectType: "staff", objectID: id.uuidString.lowercased(), reason: "created \(account.role.rawValue)"))
        return id
    }

    /// Every staff account, by username; the read is journaled.
    public func list(on connection: isolated Connection) throws -> [StaffView] {
        let rows = try connection.query(
            """
            SELECT id, username, display_name, role, totp_seed IS NOT NULL AS enrolled, disabled,
                coalesce(locked_until > clock_timestamp(), false) AS locked
            FROM console.staff ORDER BY username
            """
        ).rows
        try connection.record(AccessEvent.system(by: actor, action: .read, objectType: "staff-list"))
        return try rows.map { row in
            StaffView(
                id: try row.uuid("id"), username: try row.string("username"), displayName: try row.string("display_name"),
                role: StaffRole(rawValue: try row.string("role")) ?? .sysadmin, enrolled: try row.bool("enrolled"), disabled: try row.bool("disabled"),
                locked: try row.bool("locked"))
        }
    }

    /// Reads the staff table once: a daemon calls it at start to fail there (database
    /// unreachable, migrations missing, role without rights) rather than on the first request.
    public static func probe(on connection: isolated Connection) throws {
        _ = try connection.query("SELECT count(*) AS n FROM console.staff WHERE false")
    }

    /// Whether `username` is a staff account.
    public static func exists(username: String, on connection: isolated Connection) throws -> Bool {
        try connection.query("SELECT count(*) AS n FROM console.staff WHERE username = $1", [username]).rows[0].int("n") > 0
    }

    /// Disables a staff account and ends its sessions; with `dryRun`, only counts them.
    /// - Returns: how many sessions were open.
    /// - Throws: ``StaffError`` `.notFound`.
    public func disable(username: String, dryRun: Bool, on connection: isolated Connection) throws -> Int {
        guard let row = try connection.query("SELECT id FROM console.staff WHERE username = $1 FOR UPDATE", [username]).singleRow() else {
            throw StaffError(.notFound, "no staff account named \(username)")
        }
        let id = try row.uuid("id")
        let open = try connection.query(
            "SELECT count(*) AS n FROM console.sessions WHERE staff_id = $1 AND revoked_at IS NULL AND expires_at > clock_timestamp()", [id]
        ).rows[0].int("n")
        guard !dryRun else { return open }
        try connection.query("UPDATE console.staff SET disabled = true WHERE id = $1", [id])
        try connection.query("UPDATE console.sessions SET revoked_at = clock_timestamp() WHERE staff_id = $1 AND revoked_at IS NULL", [id])
        try connection.record(AccessEvent.system(by: actor, action: .userAdmin, objectType: "staff", objectID: id.uuidString.lowercased(), reason: "disabled"))
        return open
    }

    /// Clears an account's second factor and recovery codes (a lost phone): it enrols
    /// again at its next sign-in. With `dryRun`, changes nothing.
    /// - Throws: ``StaffError`` `.notFound`.
    public func resetSecondFactor(username: String, dryRun: Bool, on connection: isolated Connection) throws {
        guard let row = try connection.query("SELECT id FROM console.staff WHERE username = $1 FOR UPDATE", [username]).singleRow() else {
            throw StaffError(.notFound, "no staff account named \(username)")
        }
        guard !dryRun else { return }
        let id = try row.uuid("id")
        try connection.query(
            "UPDATE console.staff SET totp_seed = NULL, totp_pending_seed = NULL, totp_enrolled_at = NULL, totp_last_step = 0 WHERE id = $1", [id])
        try connection.query("DELETE FROM console.recovery_codes WHERE staff_id = $1", [id])
        try connection.query("UPDATE console.sessions SET revoked_at = clock_timestamp() WHERE staff_id = $1 AND revoked_at IS NULL", [id])
        try connection.record(
            AccessEvent.system(by: actor, action: .userAdmin, objectType: "staff", objectID: id.uuidString.lowercased(), reason: "second factor reset"))
    }
}
