import Cryptography
public import Foundation
public import Store

/// Session and lockout rules, from the `care` section of the configuration.
public struct SessionSettings: Sendable, Hashable {
    /// A session unused this long ends.
    public var idleTimeout: Duration
    /// A session ends this long after login, used or not.
    public var lifetime: Duration
    /// Failed logins in a row before the account locks.
    public var maximumFailures: Int
    /// How long a locked account stays locked.
    public var lockout: Duration

    public init(idleTimeout: Duration = .seconds(1800), lifetime: Duration = .seconds(12 * 3600), maximumFailures: Int = 5, lockout: Duration = .seconds(900)) {
        self.idleTimeout = idleTimeout
        self.lifetime = lifetime
        self.maximumFailures = maximumFailures
        self.lockout = lockout
    }
}

/// What login needs to know about an account.
public struct LoginCandidate: Sendable {
    public let userID: UUID
    public let username: String
    public let passwordHash: String
    public let role: Role
    public let teamID: UUID?
    public let teamCode: String?
    public let disabled: Bool
    public let lockedUntil: Date?

    /// The principal this account acts as.
    public var principal: Principal { Principal(userID: userID, username: username, role: role, teamID: teamID, teamCode: teamCode) }
}

/// Bearer-token sessions. Tokens are 256 random bits shown once to the client;
/// the database keeps only their SHA-256, so a copy of the table opens no session.
public struct Sessions: Sendable {
    /// The rules applied.
    public let settings: SessionSettings

    public init(settings: SessionSettings) { self.settings = settings }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func tokenHash(_ token: String) -> [UInt8] { SHA256.hash(Array(token.utf8)) }

    /// True when `username` has the form of an account name (care.users' CHECK):
    /// a lower-case letter or digit, then 1 to 63 of letters, digits, `.`, `_`, `-`.
    public static func isWellFormed(username: String) -> Bool {
        let bytes = Array(username.utf8)
        guard (2...64).contains(bytes.count) else { return false }
        func allowed(_ byte: UInt8, first: Bool) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || (!first && (byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")))
        }
        return allowed(bytes[0], first: true) && bytes.dropFirst().allSatisfy { allowed($0, first: false) }
    }

    /// The account named `username`, if any; none for a name no account can have
    /// (the database is not asked).
    public func candidate(username: String, on connection: isolated Connection) throws -> LoginCandidate? {
        guard Self.isWellFormed(username: username) else { return nil }
        guard let row = try connection.query(
            """
            SELECT u.id, u.username, u.password_hash, u.role, u.team_id, t.code AS team_code, u.disabled, u.locked_until
            FROM care.users u LEFT JOIN care.teams t ON t.id = u.team_id WHERE u.username = $1
            """, [username]).singleRow()
        else { return nil }
        return LoginCandidate(
            userID: try row.uuid("id"), username: try row.string("username"), passwordHash: try row.string("password_hash"),
            role: Role(rawValue: try row.string("role")) ?? .agent, teamID: try row.isNull("team_id") ? nil : try row.uuid("team_id"),
            teamCode: try row.optionalString("team_code"), disabled: try row.bool("disabled"), lockedUntil: try row.optionalDate("locked_until"))
    }

    /// Counts a failed login; locks the account at the limit.
    /// - Returns: true when the account is now locked.
    @discardableResult
    public func recordFailure(userID: UUID, on connection: isolated Connection) throws -> Bool {
        let row = try connection.query(
            """
            UPDATE care.users SET failed_attempts = failed_attempts + 1,
                locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN clock_timestamp() + make_interval(secs => $3) ELSE locked_until END
            WHERE id = $1 RETURNING locked_until IS NOT NULL AND locked_until > clock_timestamp() AS locked
            """, [userID, settings.maximumFailures, Self.seconds(settings.lockout)]).rows[0]
        return try row.bool("locked")
    }

    /// Opens a session after a successful login, resetting the failure count.
    public func open(for candidate: LoginCandidate, on connection: isolated Connection) throws -> SessionView {
        let token = "osm_" + Data(try SecureRandom.bytes(count: 32)).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let expires = Date().addingTimeInterval(Self.seconds(settings.lifetime))
        try connection.query("UPDATE care.users SET failed_attempts = 0, locked_until = NULL WHERE id = $1", [candidate.userID])
        try connection.query(
            "INSERT INTO care.sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)", [Self.tokenHash(token), candidate.userID, expires])
        return SessionView(
            token: token, expiresAt: expires, idleTimeoutSeconds: Int(Self.seconds(settings.idleTimeout)), username: candidate.username,
            role: candidate.role, team: candidate.teamCode)
    }

    /// The principal a bearer token stands for.
    /// - Parameters:
    ///   - token: the bearer token.
    ///   - identified: called with the principal of the token's account as soon as
    ///     the token is found, before it is checked, so that the refusal of an
    ///     expired, revoked or disabled token still records whose it was.
    /// - Throws: ``CareError/Code/invalidToken`` for an unknown, revoked or forged
    ///   token or a disabled account; ``CareError/Code/sessionExpired`` past the idle
    ///   or absolute limit.
    public func authenticate(token: String, on connection: isolated Connection, identified: (Principal) -> Void = { _ in }) throws -> Principal {
        guard Self.isWellFormed(token: token) else { throw CareError(.invalidToken, "the session token is not valid") }
        guard let row = try connection.query(
            """
            SELECT s.user_id, u.username, u.role, u.team_id, t.code AS team_code, u.disabled,
                   s.revoked_at IS NOT NULL AS revoked, s.expires_at <= clock_timestamp() AS expired,
                   s.last_seen_at <= clock_timestamp() - make_interval(secs => $2) AS idle,
                   s.last_seen_at <= clock_timestamp() - interval '30 seconds' AS stale
            FROM care.sessions s JOIN care.users u ON u.id = s.user_id LEFT JOIN care.teams t ON t.id = u.team_id
            WHERE s.token_hash = $1
            """, [Self.tokenHash(token), Self.seconds(settings.idleTimeout)]).singleRow()
        else { throw CareError(.invalidToken, "the session token is not valid") }
        let principal = try Self.principal(row)
        identified(principal)
        guard try !row.bool("revoked"), try !row.bool("disabled") else { throw CareError(.invalidToken, "the session token is not valid") }
        guard try !row.bool("expired"), try !row.bool("idle") else { throw CareError(.sessionExpired, "the session has expired; log in again") }
        if try row.bool("stale") {
            try connection.query("UPDATE care.sessions SET last_seen_at = clock_timestamp() WHERE token_hash = $1", [Self.tokenHash(token)])
        }
        return principal
    }

    /// The account a bearer token was issued to, valid or not, without touching the
    /// session: for the event of a request refused before it could be authenticated
    /// (no such route, malformed HTTP), which names who sent it when that can be read.
    public func owner(token: String, on connection: isolated Connection) throws -> Principal? {
        guard Self.isWellFormed(token: token) else { return nil }
        return try connection.query(
            """
            SELECT s.user_id, u.username, u.role, u.team_id, t.code AS team_code
            FROM care.sessions s JOIN care.users u ON u.id = s.user_id LEFT JOIN care.teams t ON t.id = u.team_id
            WHERE s.token_hash = $1
            """, [Self.tokenHash(token)]
        ).singleRow().map(Self.principal)
    }

    /// True when `token` has the form of a token this service issues.
    static func isWellFormed(token: String) -> Bool {
        token.hasPrefix("osm_") && token.utf8.count < 100
    }

    private static func principal(_ row: Row) throws -> Principal {
        Principal(
            userID: try row.uuid("user_id"), username: try row.string("username"), role: Role(rawValue: try row.string("role")) ?? .agent,
            teamID: try row.isNull("team_id") ? nil : try row.uuid("team_id"), teamCode: try row.optionalString("team_code"))
    }

    /// Ends a session (logout).
    public func close(token: String, on connection: isolated Connection) throws {
        try connection.query("UPDATE care.sessions SET revoked_at = clock_timestamp() WHERE token_hash = $1 AND revoked_at IS NULL", [Self.tokenHash(token)])
    }
}
