public import CareRecords
import Settings
import Foundation
import HTTPTypes
import Hummingbird
import Journal
public import Keyring
public import Logging
import NIOCore
public import Store
import Synchronization

/// Settings of the HTTP layer.
public struct CareAPISettings: Sendable {
    /// Largest request body accepted, in bytes.
    public var maximumBodyBytes: Int
    /// Take the client address from `X-Forwarded-For` when the peer is the local reverse proxy.
    public var trustProxy: Bool
    /// Session rules.
    public var sessions: SessionSettings
    /// log2 of scrypt's N for new password hashes and the decoy hash.
    public var passwordCostExponent: Int
    /// Whether successful reads are journaled. Always true in `osmose-care`; only the
    /// in-package benchmark turns it off, to measure what journaling costs. No
    /// configuration key reaches it.
    package var journalsSuccessfulReads = true

    public init(maximumBodyBytes: Int = 65_536, trustProxy: Bool = false, sessions: SessionSettings = SessionSettings(), passwordCostExponent: Int = 17) {
        self.maximumBodyBytes = maximumBodyBytes
        self.trustProxy = trustProxy
        self.sessions = sessions
        self.passwordCostExponent = passwordCostExponent
    }
}

/// The care service's HTTP API. Every request, including refused and malformed
/// ones, produces exactly one access event; a request whose event cannot be
/// committed fails with 503 and returns no patient data.
public struct CareAPI: Sendable {
    let pool: ConnectionPool
    let ring: DataKeyRing
    let store: CareStore
    let sessions: Sessions
    let policy: AccessPolicy
    let settings: CareAPISettings
    let logger: Logger
    let decoyHash: String
    let readEvents: EventGroupCommitter
    let loginGate = LoginGate(limit: 2)
    static let source = "osmose-care"

    /// Assembles the API over a pool, the data keys and the access policy.
    public init(pool: ConnectionPool, ring: DataKeyRing, policy: AccessPolicy, settings: CareAPISettings, logger: Logger) {
        self.pool = pool
        self.ring = ring
        self.store = CareStore(ring: ring)
        self.sessions = Sessions(settings: settings.sessions)
        self.policy = policy
        self.settings = settings
        self.logger = logger
        self.readEvents = EventGroupCommitter(pool: pool)
        self.decoyHash = (try? PasswordHasher(costExponent: settings.passwordCostExponent).hash("decoy-\(UUID().uuidString)")) ?? PasswordHasher.decoyHash
    }

    // MARK: The common path

    /// What an endpoint is, for the policy and the journal.
    struct Endpoint: Sendable {
        let resource: AccessPolicy.Resource
        let policyAction: String
        let journalAction: AccessAction
        let objectType: String
    }

    /// What the handler learns while it runs; kept outside the transaction so that
    /// a refused request's event still names who and what.
    final class Trace: Sendable {
        struct State {
            var principal: Principal?
            var purpose: AccessPurpose?
            var objectID: String?
            var patientID: UUID?
        }
        let state = Mutex(State())
    }

    /// A handler's result.
    enum Reply: Sendable {
        case json(Data, HTTPResponse.Status)
        case html(String)
    }

    /// Everything a handler needs, on the connection's thread.
    struct Call: Sendable {
        let principal: Principal
        let purpose: AccessPurpose
        let teamScoped: Bool
        let body: [UInt8]
        let query: [String: String]
        let pathID: UUID?
        let trace: Trace

        func note(objectID: UUID? = nil, patientID: UUID? = nil) {
            trace.state.withLock { state in
                if let objectID { state.objectID = objectID.uuidString.lowercased() }
                if let patientID { state.patientID = patientID }
            }
        }
    }

    func handle(
        _ request: Request, _ context: CareRequestContext, _ endpoint: Endpoint,
        _ body: @escaping @Sendable (Call, isolated Connection) throws -> Reply
    ) async -> Response {
        let requestID = UUID().uuidString.lowercased()
        let trace = Trace()
        let client = clientAddress(request, context)
        do {
            let bytes = try await readBody(request)
            let token = bearerToken(request)
            let purposeHeader = request.headers[HTTPField.Name("Osmose-Purpose")!]
            let query = Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { first, _ in first })
            let rawID = context.parameters.get("id")
            let api = self
            let work: @Sendable (isolated Connection) throws -> Reply = { connection in
                guard let token else { throw CareError(.authenticationRequired, "send Authorization: Bearer <token>") }
                let principal = try api.sessions.authenticate(token: token, on: connection)
                trace.state.withLock { $0.principal = principal }
                guard let purposeHeader else { throw CareError(.purposeRequired, "name the purpose in the Osmose-Purpose header") }
                guard let purpose = AccessPurpose(rawValue: purposeHeader) else {
                    throw CareError(.invalidPurpose, "Osmose-Purpose must be one of \(AccessPurpose.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                trace.state.withLock { $0.purpose = purpose }
                let decision = api.policy.decide(role: principal.role, resource: endpoint.resource, action: endpoint.policyAction, purpose: purpose)
                guard decision.allowed else {
                    throw CareError(.forbidden, "the access policy does not allow a \(principal.role.rawValue) to \(endpoint.policyAction) \(endpoint.resource.rawValue) for \(purpose.rawValue)")
                }
                var pathID: UUID?
                if let rawID {
                    guard let parsed = UUID(uuidString: rawID) else { throw CareError(.invalidField, "the id in the path is not a UUID") }
                    pathID = parsed
                    trace.state.withLock { $0.objectID = parsed.uuidString.lowercased() }
                }
                let call = Call(principal: principal, purpose: purpose, teamScoped: decision.teamScoped, body: bytes, query: query, pathID: pathID, trace: trace)
                let reply = try body(call, connection)
                if endpoint.journalAction != .read {
                    try connection.record(api.event(endpoint.journalAction, endpoint.objectType, .success, nil, requestID, request, client, trace))
                }
                return reply
            }
            // A write and its event share one transaction. A read's statements need no
            // atomicity; its event is committed (grouped with concurrent reads' events)
            // before the response exists.
            let reply: Reply
            if endpoint.journalAction == .read {
                reply = try await withCurrentKeys { try await pool.withConnection { try await $0.perform(work) } }
                if settings.journalsSuccessfulReads {
                    try await readEvents.record(event(endpoint.journalAction, endpoint.objectType, .success, nil, requestID, request, client, trace))
                }
            } else {
                reply = try await withCurrentKeys { try await pool.transaction(work) }
            }
            return respond(reply, requestID: requestID)
        } catch let error as CareError {
            let result: AccessResult = [401, 403].contains(error.code.status) ? .denied : .error
            return await fail(error, result: result, endpoint.journalAction, endpoint.objectType, requestID, request, client, trace)
        } catch let error as KeyringError {
            logger.error("decryption failed", metadata: ["osmose.error": "\(error)", "osmose.request": "\(requestID)"])
            return await fail(CareError(.internalError, "a stored value could not be decrypted"), result: .error, endpoint.journalAction, endpoint.objectType, requestID, request, client, trace)
        } catch {
            // The transaction failed, the event with it: no event, no data.
            logger.error("request failed closed", metadata: ["osmose.error": "\(error)", "osmose.request": "\(requestID)"])
            return await fail(CareError(.journalUnavailable, "the access journal cannot record this request; nothing was done"), result: .error, endpoint.journalAction, endpoint.objectType, requestID, request, client, trace)
        }
    }

    /// Runs `attempt`, and once more after reloading the keyring when the keys
    /// changed under this process: osmose-keyd rotated a key, so the database
    /// refused a ciphertext under the demoted one (SQLSTATE OSK01), or a value is
    /// under a key this process has not loaded yet. The first attempt changed
    /// nothing: its transaction rolled back.
    func withCurrentKeys<Result>(_ attempt: () async throws -> Result) async throws -> Result {
        do {
            return try await attempt()
        } catch let error where Self.isStaleKeys(error) {
            logger.info("keys changed: reloading the keyring", metadata: ["osmose.error": "\(error)"])
            try await pool.withConnection { try await ring.reload(on: $0) }
            return try await attempt()
        }
    }

    static func isStaleKeys(_ error: any Error) -> Bool {
        if let error = error as? StoreError { return error.sqlState == "OSK01" }
        if let error = error as? KeyringError { return error.code == .staleRing || error.code == .unknownKey }
        return false
    }

    /// Records the failure's event in its own transaction, then answers with the error.
    /// When even that event cannot be written, answers 503.
    func fail(
        _ error: CareError, result: AccessResult, _ action: AccessAction, _ objectType: String, _ requestID: String, _ request: Request,
        _ client: String?, _ trace: Trace
    ) async -> Response {
        let event = event(action, objectType, result, error.code.rawValue, requestID, request, client, trace)
        do {
            try await pool.transaction { connection in try connection.record(event) }
            return errorResponse(error, requestID: requestID)
        } catch {
            logger.error("access event could not be recorded", metadata: ["osmose.error": "\(error)", "osmose.request": "\(requestID)"])
            return errorResponse(CareError(.journalUnavailable, "the access journal cannot record this request; nothing was done"), requestID: requestID)
        }
    }

    func event(
        _ action: AccessAction, _ objectType: String, _ result: AccessResult, _ reason: String?, _ requestID: String, _ request: Request,
        _ client: String?, _ trace: Trace
    ) -> AccessEvent {
        let state = trace.state.withLock { $0 }
        var event = AccessEvent(source: Self.source, requestID: requestID, action: action, objectType: objectType, result: result)
        event.actorUserID = state.principal?.userID
        event.actorUsername = state.principal?.username
        event.actorRole = state.principal?.role.rawValue
        event.actorTeam = state.principal?.teamCode
        event.purpose = state.purpose
        event.objectID = state.objectID
        event.patientID = state.patientID
        event.reason = reason
        event.clientIP = client
        event.userAgent = request.headers[.userAgent]
        return event
    }

    func readBody(_ request: Request) async throws -> [UInt8] {
        guard request.method == .post || request.method == .patch || request.method == .put else { return [] }
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > settings.maximumBodyBytes {
            throw CareError(.tooLarge, "the request body is larger than \(settings.maximumBodyBytes) bytes")
        }
        do {
            let buffer = try await request.body.collect(upTo: settings.maximumBodyBytes)
            return Array(buffer.readableBytesView)
        } catch {
            throw CareError(.tooLarge, "the request body is larger than \(settings.maximumBodyBytes) bytes")
        }
    }

    func bearerToken(_ request: Request) -> String? {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { return nil }
        return String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    func clientAddress(_ request: Request, _ context: CareRequestContext) -> String? {
        let peer = context.peerAddress
        if settings.trustProxy, peer == nil || peer == "127.0.0.1" || peer == "::1",
            let forwarded = request.headers[HTTPField.Name("X-Forwarded-For")!]?.split(separator: ",").last
        {
            let candidate = forwarded.trimmingCharacters(in: .whitespaces)
            if candidate.range(of: #"^[0-9a-fA-F:.]{2,45}$"#, options: .regularExpression) != nil { return candidate }
        }
        return peer
    }

    // MARK: Responses

    func respond(_ reply: Reply, requestID: String) -> Response {
        switch reply {
        case .json(let data, let status):
            return Response(status: status, headers: headers("application/json", requestID), body: .init(byteBuffer: ByteBuffer(bytes: data)))
        case .html(let text):
            return Response(status: .ok, headers: headers("text/html; charset=utf-8", requestID), body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }

    func errorResponse(_ error: CareError, requestID: String) -> Response {
        struct Body: Encodable {
            struct Detail: Encodable { let code: String; let message: String; let requestId: String }
            let error: Detail
        }
        let data = (try? CareJSON.encoder().encode(Body(error: .init(code: error.code.rawValue, message: error.message, requestId: requestID)))) ?? Data()
        var fields = headers("application/json", requestID)
        if error.code.status == 401 { fields[.wwwAuthenticate] = "Bearer" }
        return Response(status: HTTPResponse.Status(code: error.code.status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func headers(_ contentType: String, _ requestID: String) -> HTTPFields {
        var fields = HTTPFields()
        fields[.contentType] = contentType
        fields[.cacheControl] = "no-store"
        fields[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        fields[HTTPField.Name("Osmose-Request-Id")!] = requestID
        return fields
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Reply {
        .json(try CareJSON.encoder().encode(value), status)
    }
}
