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

    static let wrongCredentials = CareError(.invalidCredentials, "unknown user or wrong password")
    static let lockedAccount = CareError(.accountLocked, "too many failed attempts; the account is locked for a while")

    func login(_ request: Request, _ context: CareRequestContext) async -> Response {
        let audit = audit(request, context, .login, "session")
        return await answer(audit) {
            let input = try CareJSON.decode(LoginInput.self, from: try await readBody(request))
            let username = JournalText.bounded(input.username, to: JournalText.usernameLimit)
            let sessions = self.sessions
            let candidate = try await pool.transaction { connection in try sessions.candidate(username: username, on: connection) }
            // The same scrypt work whether or not the account exists, off the cooperative pool.
            let hash = candidate?.passwordHash ?? decoyHash
            await loginGate.enter()
            let passwordMatches = await CPUWork.run { PasswordHasher.verify(input.password, against: hash) }
            await loginGate.leave()
            if let candidate {
                audit.identify(candidate.principal)
                audit.touched(object: candidate.userID)
            } else {
                audit.attempted(username: username)
            }
            let locked = candidate?.lockedUntil.map { $0 > Date() } ?? false
            return try await committing(audit) { connection in
                guard let candidate else { return .refused(Self.wrongCredentials) }
                if candidate.disabled { return .refused(Self.wrongCredentials, journalReason: "auth.account_disabled") }
                if locked { return .refused(Self.lockedAccount) }
                guard passwordMatches else {
                    let nowLocked = try sessions.recordFailure(userID: candidate.userID, on: connection)
                    return .refused(nowLocked ? Self.lockedAccount : Self.wrongCredentials, journalReason: CareError.Code.invalidCredentials.rawValue)
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

/// Lets at most `limit` password verifications run at once. Each needs scrypt's
/// 128 MiB; a burst of logins queues here instead of exhausting memory.
actor LoginGate {
    private let limit: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = max(1, limit) }

    func enter() async {
        if running < limit {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty {
            running -= 1
        } else {
            waiting.removeFirst().resume()
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
