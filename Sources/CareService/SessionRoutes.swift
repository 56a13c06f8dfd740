import CareRecords
import Foundation
import Hummingbird
import Journal

extension CareAPI {
    /// `/v1/auth`: login and logout, through the same fail-closed path as every
    /// endpoint (``answer(_:_:)``): each attempt records one event, and a login's
    /// outcome commits with it.
    func sessionRoutes() -> RouteCollection<CareRequestContext> {
        let routes = RouteCollection(context: CareRequestContext.self)
        let api = self
        routes.post("login") { request, context in await api.login(request, context) }
        routes.post("logout") { request, context in await api.logout(request, context) }
        return routes
    }

    /// The answer to every failed login: an unknown user, a wrong password, a
    /// disabled or locked account all answer alike, so that the answers tell an
    /// attacker neither which accounts exist nor which are locked. The event
    /// records which it was.
    var wrongCredentials: CareError {
        let minutes = max(1, Int(sessions.settings.lockout.components.seconds / 60))
        return CareError(
            .invalidCredentials,
            "unknown user or wrong password (after \(sessions.settings.maximumFailures) failed attempts in a row an account is locked for \(minutes) min)")
    }

    static let throttled = CareError(.throttled, "too many login attempts in progress from this address or for this user; retry in a few seconds")

    func login(_ request: Request, _ context: CareRequestContext) async -> Response {
        let audit = audit(request, context, .login, "session")
        return await answer(audit) {
            let input = try CareJSON.decode(LoginInput.self, from: try await readBody(request))
            let sessions = self.sessions
            let candidate = try await pool.withConnection { try await $0.perform { try sessions.candidate(username: input.username, on: $0) } }
            if let candidate {
                audit.identify(candidate.principal)
                audit.touched(object: candidate.userID)
            } else {
                audit.attempted(username: store.journalName(ofUnknownUsername: input.username))
            }
            guard let ticket = await loginThrottle.enter(address: audit.clientIP ?? "", account: JournalText.bounded(input.username, to: 128)) else {
                throw Self.throttled
            }
            // The same scrypt work whether or not the account exists, off the cooperative pool.
            let hash = candidate?.passwordHash ?? decoyHash
            let passwordMatches = await CPUWork.run { PasswordHasher.verify(input.password, against: hash) }
            await loginThrottle.leave(ticket)
            let locked = candidate?.lockedUntil.map { $0 > Date() } ?? false
            let refusal = wrongCredentials
            return try await committing(audit) { connection in
                guard let candidate else { return .refused(refusal) }
                if candidate.disabled { return .refused(refusal, journalReason: "auth.account_disabled") }
                if locked { return .refused(refusal, journalReason: CareError.Code.accountLocked.rawValue) }
                guard passwordMatches else {
                    let nowLocked = try sessions.recordFailure(userID: candidate.userID, on: connection)
                    return .refused(refusal, journalReason: (nowLocked ? CareError.Code.accountLocked : .invalidCredentials).rawValue)
                }
                return try CareAPI.json(try sessions.open(for: candidate, on: connection))
            }
        }
    }

    func logout(_ request: Request, _ context: CareRequestContext) async -> Response {
        let audit = audit(request, context, .logout, "session")
        let token = bearerToken(request)
        let api = self
        return await answer(audit) {
            try await committing(audit) { connection in
                guard let token else { throw Self.missingToken }
                _ = try api.authenticate(token, audit, on: connection)
                try api.sessions.close(token: token, on: connection)
                return .noContent
            }
        }
    }
}

/// Runs CPU-heavy work (password hashing) on a thread of its own, so a burst of
/// logins never occupies the cooperative pool's few threads.
enum CPUWork {
    static func run<Result: Sendable>(_ body: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: body()) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }
}
