import CareRecords
import Cryptography
public import Foundation
public import Store

/// Session and lockout rules of the console.
public struct StaffSessionSettings: Sendable, Hashable {
    /// A session unused this long ends.
    public var idleTimeout: Duration
    /// A session ends this long after sign-in, used or not.
    public var lifetime: Duration
    /// A sign-in that gave the password has this long to give the second factor.
    public var secondFactorWindow: Duration
    /// Failed sign-ins (password or second factor) in a row before the account locks.
    public var maximumFailures: Int
    /// How long a locked account stays locked.
    public var lockout: Duration

    /// The rules; the defaults suit a console used for minutes at a time.
    public init(
        idleTimeout: Duration = .seconds(900), lifetime: Duration = .seconds(8 * 3600), secondFactorWindow: Duration = .seconds(300),
        maximumFailures: Int = 5, lockout: Duration = .seconds(900)
    ) {
        self.idleTimeout = idleTimeout
        self.lifetime = lifetime
        self.secondFactorWindow = secondFactorWindow
        self.maximumFailures = maximumFailures
        self.lockout = lockout
    }
}

/// How far a session has come.
public enum SessionStage: String, Sendable, Hashable {
    /// The password was given; the TOTP code (or a recovery code) is awaited.
    case secondFactor = "second-factor"
    /// The password was given and the account has no second factor yet: enrolment is awaited.
    case enrolment
    /// Both factors were given.
    case complete
}

/// A session the browser presented, authenticated.
public struct StaffSession: Sendable, Hashable {
    /// Who it belongs to.
    public let principal: StaffPrincipal
    /// How far it has come.
    public let stage: SessionStage
    /// The token every form of the session must carry back (synchroniser token).
    public let csrfToken: String

    /// True when `presented` is this session's CSRF token (compared in constant time).
    public func acceptsCSRF(_ presented: String?) -> Bool {
        guard let presented else { return false }
        return ConstantTime.equals(Array(presented.utf8), Array(csrfToken.utf8))
    }
}

/// A session just opened: its token goes to the browser once, in a cookie.
public struct OpenedSession: Sendable {
    /// The bearer token (256 random bits, base64url): the cookie's value.
    public let token: String
    /// The session it opens.
    public let session: StaffSession
}

/// What a sign-in with the password gives: who (when the account exists) and how it ended.
public struct PasswordOutcome: Sendable {
    /// The account the username names, when it exists (a refusal still names it in the journal).
    public let principal: StaffPrincipal?
    /// The session opened at its first stage, or the refusal.
    public let result: Result<OpenedSession, StaffError>
}

/// Sign-in, sessions and lockout for the console. Tokens and CSRF tokens are 256
/// random bits; the database keeps the tokens' SHA-256 only.
public struct StaffSessions: Sendable {
    /// The rules applied.
    public let settings: StaffSessionSettings
    /// A valid hash of a random password, checked when the username is unknown so
    /// that the answer takes as long as for a known one.
    let decoyHash: String

    /// Sessions under `settings`; `costExponent` sets the decoy hash's cost (that of new passwords).
    public init(settings: StaffSessionSettings, costExponent: Int) {
        self.settings = settings
        self.decoyHash = (try? PasswordHasher(costExponent: costExponent).hash("decoy-\(UUID().uuidString)")) ?? PasswordHasher.decoyHash
    }

    /// `duration` in seconds.
    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func tokenHash(_ token: String) -> [UInt8] { SHA256.hash(Array(token.utf8)) }

    /// 256 random bits, base64url without padding (43 characters).
    static func randomToken() throws -> String {
        Data(try SecureRandom.bytes(count: 32)).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Checks the password (scrypt, so run it before opening a transaction) against the stored hash.
    struct Candidate: Sendable {
        let principal: StaffPrincipal
        let passwordHash: String
        let disabled: Bool
        let locked: Bool
        let enrolled: Bool
    }

    static func candidate(username: String, on connection: isolated Connection) throws -> Candidate? {
        guard
            let row = try connection.query(
                """
                SELECT id, username, display_name, role, password_hash, disabled, totp_seed IS NOT NULL AS enrolled,
                    coalesce(locked_until > clock_timestamp(), false) AS locked
                FROM console.staff WHERE username = $1
                """, [username]
            ).singleRow()
        else { return nil }
        return Candidate(
            principal: StaffPrincipal(
                id: try row.uuid("id"), username: try row.string("username"), displayName: try row.string("display_name"),
                role: StaffRole(rawValue: try row.string("role")) ?? .sysadmin),
            passwordHash: try row.string("password_hash"), disabled: try row.bool("disabled"), locked: try row.bool("locked"), enrolled: try row.bool("enrolled"))
    }

    /// The first step of a sign-in: the username and password. On success opens a
    /// session at stage `second-factor` (or `enrolment` for an account without a second
    /// factor yet), which shows no page. A wrong password counts a failure; at the
    /// limit the account locks. Runs in the caller's transaction, so that the count
    /// commits with the attempt's event.
    public func signIn(username: String, password: String, on connection: isolated Connection) throws -> PasswordOutcome {
        guard let candidate = try Self.candidate(username: username, on: connection) else {
            _ = PasswordHasher.verify(password, against: decoyHash)
            return PasswordOutcome(principal: nil, result: .failure(StaffError(.invalidCredentials, "wrong username or password")))
        }
        if candidate.locked {
            return PasswordOutcome(principal: candidate.principal, result: .failure(StaffError(.accountLocked, "too many failed sign-ins: the account is locked for a while")))
        }
        guard PasswordHasher.verify(password, against: candidate.passwordHash), !candidate.disabled else {
            let locked = try recordFailure(staffID: candidate.principal.id, on: connection)
            let error = locked ? StaffError(.accountLocked, "too many failed sign-ins: the account is locked for a while") : StaffError(.invalidCredentials, "wrong username or password")
            return PasswordOutcome(principal: candidate.principal, result: .failure(error))
        }
        let opened = try open(candidate.principal, stage: candidate.enrolled ? .secondFactor : .enrolment, lifetime: settings.secondFactorWindow, on: connection)
        return PasswordOutcome(principal: candidate.principal, result: .success(opened))
    }

    /// Counts a failed sign-in step; locks the account at the limit.
    /// - Returns: true when the account is now locked.
    @discardableResult
    public func recordFailure(staffID: UUID, on connection: isolated Connection) throws -> Bool {
        try connection.query(
            """
            UPDATE console.staff SET failed_attempts = failed_attempts + 1,
                locked_until = CASE WHEN failed_attempts + 1 >= $2 THEN clock_timestamp() + make_interval(secs => $3) ELSE locked_until END
            WHERE id = $1 RETURNING coalesce(locked_until > clock_timestamp(), false) AS locked
            """, [staffID, settings.maximumFailures, Self.seconds(settings.lockout)]
        ).rows[0].bool("locked")
    }

    /// Whether the account is locked now.
    public func isLocked(staffID: UUID, on connection: isolated Connection) throws -> Bool {
        try connection.query("SELECT coalesce(locked_until > clock_timestamp(), false) AS locked FROM console.staff WHERE id = $1", [staffID]).rows[0].bool("locked")
    }

    /// Ends `token`'s session and opens a complete one for the same account (a new
    /// token: the one that only knew the password never sees a page), resetting the
    /// failure count.
    public func complete(replacing token: String, for principal: StaffPrincipal, on connection: isolated Connection) throws -> OpenedSession {
        try close(token: token, on: connection)
        try connection.query("UPDATE console.staff SET failed_attempts = 0, locked_until = NULL WHERE id = $1", [principal.id])
        return try open(principal, stage: .complete, lifetime: settings.lifetime, on: connection)
    }

    func open(_ principal: StaffPrincipal, stage: SessionStage, lifetime: Duration, on connection: isolated Connection) throws -> OpenedSession {
        let token = try Self.randomToken()
        let csrf = try Self.randomToken()
        try connection.query(
            "INSERT INTO console.sessions (token_hash, staff_id, stage, csrf_token, expires_at) VALUES ($1, $2, $3, $4, clock_timestamp() + make_interval(secs => $5))",
            [Self.tokenHash(token), principal.id, stage.rawValue, csrf, Self.seconds(lifetime)])
        return OpenedSession(token: token, session: StaffSession(principal: principal, stage: stage, csrfToken: csrf))
    }

    /// The session a cookie's token stands for, its last use refreshed.
    /// - Throws: ``StaffError`` `.invalidSession` for an unknown, revoked or malformed
    ///   token or a disabled account; `.sessionExpired` past the idle or absolute limit.
    public func authenticate(token: String, on connection: isolated Connection) throws -> StaffSession {
        guard token.utf8.count == 43, token.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw StaffError(.invalidSession, "the session is not valid: sign in")
        }
        guard
            let row = try connection.query(
                """
                SELECT s.staff_id, s.stage, s.csrf_token, u.username, u.display_name, u.role, u.disabled,
                    s.revoked_at IS NOT NULL AS revoked, s.expires_at <= clock_timestamp() AS expired,
                    s.last_seen_at <= clock_timestamp() - make_interval(secs => $2) AS idle,
                    s.last_seen_at <= clock_timestamp() - interval '15 seconds' AS stale
                FROM console.sessions s JOIN console.staff u ON u.id = s.staff_id WHERE s.token_hash = $1
                """, [Self.tokenHash(token), Self.seconds(settings.idleTimeout)]
            ).singleRow()
        else { throw StaffError(.invalidSession, "the session is not valid: sign in") }
        guard try !row.bool("revoked"), try !row.bool("disabled") else { throw StaffError(.invalidSession, "the session is not valid: sign in") }
        guard try !row.bool("expired"), try !row.bool("idle") else { throw StaffError(.sessionExpired, "the session has expired: sign in again") }
        if try row.bool("stale") {
            try connection.query("UPDATE console.sessions SET last_seen_at = clock_timestamp() WHERE token_hash = $1", [Self.tokenHash(token)])
        }
        let principal = StaffPrincipal(
            id: try row.uuid("staff_id"), username: try row.string("username"), displayName: try row.string("display_name"),
            role: StaffRole(rawValue: try row.string("role")) ?? .sysadmin)
        return StaffSession(principal: principal, stage: SessionStage(rawValue: try row.string("stage")) ?? .secondFactor, csrfToken: try row.string("csrf_token"))
    }

    /// Ends a session (sign-out): its token opens nothing afterwards.
    public func close(token: String, on connection: isolated Connection) throws {
        try connection.query("UPDATE console.sessions SET revoked_at = clock_timestamp() WHERE token_hash = $1 AND revoked_at IS NULL", [Self.tokenHash(token)])
    }
}
