import CareRecords
import Cryptography
import Foundation
import HTTPTypes
public import Hummingbird
import Journal
import NIOCore
import Store

extension CareAPI {
    /// The router with every endpoint (documented in docs/api.md and docs/openapi.yaml).
    public func router() -> Router<CareRequestContext> {
        let router = Router(context: CareRequestContext.self)
        let api = self
        router.post("/v1/auth/login") { request, context in await api.login(request, context) }
        router.post("/v1/auth/logout") { request, context in await api.logout(request, context) }

        router.get("/v1/patients") { request, context in
            await api.handle(request, context, .init(resource: .patient, policyAction: "search", journalAction: .read, objectType: "patient")) { call, connection in
                let found = try api.store.searchPatients(
                    lastName: call.query["last_name"], firstName: call.query["first_name"], birthDate: call.query["birth_date"], ins: call.query["ins"],
                    on: connection)
                if found.count == 1 { call.note(objectID: found[0].id, patientID: found[0].id) }
                return try CareAPI.json(found)
            }
        }
        router.post("/v1/patients") { request, context in
            await api.handle(request, context, .init(resource: .patient, policyAction: "create", journalAction: .create, objectType: "patient")) { call, connection in
                let input = try CareJSON.decode(PatientInput.self, from: call.body)
                let view = try api.store.createPatient(input, by: call.principal, on: connection)
                call.note(objectID: view.id, patientID: view.id)
                return try CareAPI.json(view, status: .created)
            }
        }
        router.get("/v1/patients/:id") { request, context in
            await api.handle(request, context, .init(resource: .patient, policyAction: "read", journalAction: .read, objectType: "patient")) { call, connection in
                call.note(patientID: call.pathID)
                return try CareAPI.json(try api.store.patient(call.pathID!, on: connection))
            }
        }
        router.patch("/v1/patients/:id") { request, context in
            await api.handle(request, context, .init(resource: .patient, policyAction: "update", journalAction: .update, objectType: "patient")) { call, connection in
                call.note(patientID: call.pathID)
                let patch = try CareJSON.decode(PatientPatch.self, from: call.body)
                return try CareAPI.json(try api.store.updatePatient(call.pathID!, patch, by: call.principal, on: connection))
            }
        }
        router.get("/v1/patients/:id/history") { request, context in
            await api.handle(request, context, .init(resource: .patient, policyAction: "history", journalAction: .read, objectType: "patient-history")) { call, connection in
                _ = try api.store.patient(call.pathID!, on: connection)
                call.note(patientID: call.pathID)
                return try CareAPI.json(try api.store.history(.patient, id: call.pathID!, on: connection))
            }
        }

        router.get("/v1/episodes") { request, context in
            await api.handle(request, context, .init(resource: .episode, policyAction: "list", journalAction: .read, objectType: "episode-list")) { call, connection in
                try CareAPI.json(try api.store.listEpisodes(
                    team: call.query["team"], state: call.query["state"] ?? "open", for: call.principal, teamScoped: call.teamScoped, on: connection))
            }
        }
        router.post("/v1/episodes") { request, context in
            await api.handle(request, context, .init(resource: .episode, policyAction: "create", journalAction: .create, objectType: "episode")) { call, connection in
                let input = try CareJSON.decode(EpisodeInput.self, from: call.body)
                call.note(patientID: input.patientId)
                let view = try api.store.createEpisode(input, by: call.principal, teamScoped: call.teamScoped, on: connection)
                call.note(objectID: view.id)
                return try CareAPI.json(view, status: .created)
            }
        }
        router.get("/v1/episodes/:id") { request, context in
            await api.handle(request, context, .init(resource: .episode, policyAction: "read", journalAction: .read, objectType: "episode")) { call, connection in
                let view = try api.episode(call, connection)
                return try CareAPI.json(view)
            }
        }
        router.patch("/v1/episodes/:id") { request, context in
            await api.handle(request, context, .init(resource: .episode, policyAction: "update", journalAction: .update, objectType: "episode")) { call, connection in
                _ = try api.episode(call, connection)
                let patch = try CareJSON.decode(EpisodePatch.self, from: call.body)
                return try CareAPI.json(try api.store.updateEpisode(call.pathID!, patch, by: call.principal, teamScoped: call.teamScoped, on: connection))
            }
        }
        router.post("/v1/episodes/:id/close") { request, context in
            await api.handle(request, context, .init(resource: .episode, policyAction: "close", journalAction: .update, objectType: "episode")) { call, connection in
                _ = try api.episode(call, connection)
                return try CareAPI.json(try api.store.closeEpisode(call.pathID!, by: call.principal, teamScoped: call.teamScoped, on: connection))
            }
        }
        router.get("/v1/episodes/:id/history") { request, context in
            await api.handle(request, context, .init(resource: .episode, policyAction: "history", journalAction: .read, objectType: "episode-history")) { call, connection in
                _ = try api.episode(call, connection)
                return try CareAPI.json(try api.store.history(.episode, id: call.pathID!, on: connection))
            }
        }
        router.get("/v1/episodes/:id/export") { request, context in
            await api.handle(request, context, .init(resource: .episode, policyAction: "export", journalAction: .export, objectType: "episode")) { call, connection in
                _ = try api.episode(call, connection)
                let export = try api.store.export(episodeID: call.pathID!, by: call.principal, teamScoped: call.teamScoped, on: connection)
                switch call.query["format"] ?? "json" {
                case "json": return try CareAPI.json(export)
                case "html": return .html(HandoverSheet.render(export))
                default: throw CareError(.invalidQuery, "format must be json or html")
                }
            }
        }
        router.get("/v1/episodes/:id/transmissions") { request, context in
            await api.handle(request, context, .init(resource: .transmission, policyAction: "list", journalAction: .read, objectType: "transmission-list")) { call, connection in
                _ = try api.episode(call, connection)
                return try CareAPI.json(try api.store.transmissions(episodeID: call.pathID!, for: call.principal, teamScoped: call.teamScoped, on: connection))
            }
        }
        router.post("/v1/episodes/:id/transmissions") { request, context in
            await api.handle(request, context, .init(resource: .transmission, policyAction: "create", journalAction: .create, objectType: "transmission")) { call, connection in
                _ = try api.episode(call, connection)
                let input = try CareJSON.decode(TransmissionInput.self, from: call.body)
                let view = try api.store.createTransmission(episodeID: call.pathID!, input, by: call.principal, teamScoped: call.teamScoped, on: connection)
                call.note(objectID: view.id)
                return try CareAPI.json(view, status: .created)
            }
        }
        router.delete("/v1/transmissions/:id") { request, context in
            await api.handle(request, context, .init(resource: .transmission, policyAction: "retract", journalAction: .delete, objectType: "transmission")) { call, connection in
                let (view, patientID) = try api.store.retractTransmission(call.pathID!, by: call.principal, teamScoped: call.teamScoped, on: connection)
                call.note(patientID: patientID)
                return try CareAPI.json(view)
            }
        }
        router.get("/v1/users") { request, context in
            await api.handle(request, context, .init(resource: .user, policyAction: "list", journalAction: .read, objectType: "user-list")) { _, connection in
                try CareAPI.json(try api.store.users(on: connection))
            }
        }
        router.get("/v1/health") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        return router
    }

    /// Reads the path's episode (checking team scope) and notes its patient for the event.
    func episode(_ call: Call, _ connection: isolated Connection) throws -> EpisodeView {
        let view = try store.episode(call.pathID!, for: call.principal, teamScoped: false, on: connection)
        call.note(patientID: view.patientId)
        try store.checkScope(view, call.principal, call.teamScoped)
        return view
    }

    // MARK: Login and logout

    func login(_ request: Request, _ context: CareRequestContext) async -> Response {
        let requestID = UUID().uuidString.lowercased()
        let trace = Trace()
        let client = clientAddress(request, context)
        do {
            let input = try CareJSON.decode(LoginInput.self, from: try await readBody(request))
            let username = String(input.username.prefix(128))
            let sessions = self.sessions
            let candidate = try await pool.transaction { connection in try sessions.candidate(username: username, on: connection) }
            // The same scrypt work whether or not the account exists, off the cooperative pool.
            let hash = candidate?.passwordHash ?? decoyHash
            await loginGate.enter()
            let passwordMatches = await CPUWork.run { PasswordHasher.verify(input.password, against: hash) }
            await loginGate.leave()
            guard let candidate else {
                throw LoginFailure(error: CareError(.invalidCredentials, "unknown user or wrong password"), username: username)
            }
            trace.state.withLock { $0.principal = candidate.principal; $0.objectID = candidate.userID.uuidString.lowercased() }
            let locked = candidate.lockedUntil.map { $0 > Date() } ?? false
            let api = self
            let outcome: Result<SessionView, CareError> = try await pool.transaction { connection in
                if candidate.disabled {
                    let failure = CareError(.invalidCredentials, "unknown user or wrong password")
                    try connection.record(api.event(.login, "session", .denied, "auth.account_disabled", requestID, request, client, trace))
                    return .failure(failure)
                }
                if locked {
                    try connection.record(api.event(.login, "session", .denied, CareError.Code.accountLocked.rawValue, requestID, request, client, trace))
                    return .failure(CareError(.accountLocked, "too many failed attempts; the account is locked for a while"))
                }
                guard passwordMatches else {
                    let nowLocked = try sessions.recordFailure(userID: candidate.userID, on: connection)
                    try connection.record(api.event(.login, "session", .denied, CareError.Code.invalidCredentials.rawValue, requestID, request, client, trace))
                    return .failure(nowLocked
                        ? CareError(.accountLocked, "too many failed attempts; the account is locked for a while")
                        : CareError(.invalidCredentials, "unknown user or wrong password"))
                }
                let session = try sessions.open(for: candidate, on: connection)
                try connection.record(api.event(.login, "session", .success, nil, requestID, request, client, trace))
                return .success(session)
            }
            switch outcome {
            case .success(let session): return respond(try CareAPI.json(session), requestID: requestID)
            case .failure(let error): return errorResponse(error, requestID: requestID)
            }
        } catch let failure as LoginFailure {
            var event = event(.login, "session", .denied, failure.error.code.rawValue, requestID, request, client, trace)
            event.actorUsername = failure.username
            return await recordThenRespond(event, failure.error, requestID)
        } catch let error as CareError {
            return await fail(error, result: .error, .login, "session", requestID, request, client, trace)
        } catch {
            logger.error("login failed closed", metadata: ["osmose.error": "\(error)", "osmose.request": "\(requestID)"])
            return await fail(CareError(.journalUnavailable, "the access journal cannot record this request; nothing was done"), result: .error, .login, "session", requestID, request, client, trace)
        }
    }

    struct LoginFailure: Error {
        let error: CareError
        let username: String
    }

    func recordThenRespond(_ event: AccessEvent, _ error: CareError, _ requestID: String) async -> Response {
        do {
            try await pool.transaction { connection in try connection.record(event) }
            return errorResponse(error, requestID: requestID)
        } catch {
            return errorResponse(CareError(.journalUnavailable, "the access journal cannot record this request; nothing was done"), requestID: requestID)
        }
    }

    func logout(_ request: Request, _ context: CareRequestContext) async -> Response {
        let requestID = UUID().uuidString.lowercased()
        let trace = Trace()
        let client = clientAddress(request, context)
        let api = self
        do {
            guard let token = bearerToken(request) else { throw CareError(.authenticationRequired, "send Authorization: Bearer <token>") }
            try await pool.transaction { connection in
                let principal = try api.sessions.authenticate(token: token, on: connection)
                trace.state.withLock { $0.principal = principal }
                try api.sessions.close(token: token, on: connection)
                try connection.record(api.event(.logout, "session", .success, nil, requestID, request, client, trace))
            }
            return Response(status: .noContent, headers: headers("application/json", requestID))
        } catch let error as CareError {
            return await fail(error, result: .denied, .logout, "session", requestID, request, client, trace)
        } catch {
            return await fail(CareError(.journalUnavailable, "the access journal cannot record this request; nothing was done"), result: .error, .logout, "session", requestID, request, client, trace)
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
