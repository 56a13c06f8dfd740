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

/// Settings of the HTTP layer.
public struct CareAPISettings: Sendable {
    /// Largest request body accepted, in bytes.
    public var maximumBodyBytes: Int
    /// Take the client address from `X-Forwarded-For` when the peer is a trusted proxy.
    public var trustProxy: Bool
    /// The addresses whose `X-Forwarded-For` is honoured when ``trustProxy`` is set
    /// (in the form ``Journal/JournalText/canonicalAddress(_:)`` gives); a peer on a Unix
    /// socket is the proxy the socket's permissions let in.
    public var trustedProxies: Set<String>
    /// Session rules.
    public var sessions: SessionSettings
    /// log2 of scrypt's N for new password hashes and the decoy hash.
    public var passwordCostExponent: Int
    /// The bounds on password checks (per address, per account, in all).
    var loginLimits = LoginAdmission.Limits()
    /// Whether successful reads are journaled. Always true in `osmose-care`; only the
    /// in-package benchmark turns it off, to measure what journaling costs. No
    /// configuration key reaches it.
    package var journalsSuccessfulReads = true

    public init(
        maximumBodyBytes: Int = 65_536, trustProxy: Bool = false, trustedProxies: [String] = ["127.0.0.1", "::1"],
        sessions: SessionSettings = SessionSettings(), passwordCostExponent: Int = 17
    ) {
        self.maximumBodyBytes = maximumBodyBytes
        self.trustProxy = trustProxy
        self.trustedProxies = Set(trustedProxies.compactMap(JournalText.canonicalAddress))
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
    /// Commits the events of reads and of refusals, grouped (``EventGroupCommitter``).
    let groupedEvents: EventGroupCommitter
    let loginThrottle: LoginThrottle

    /// Assembles the API over a pool, the data keys and the access policy.
    public init(pool: ConnectionPool, ring: DataKeyRing, policy: AccessPolicy, settings: CareAPISettings, logger: Logger) {
        self.pool = pool
        self.ring = ring
        self.store = CareStore(ring: ring)
        self.sessions = Sessions(settings: settings.sessions)
        self.policy = policy
        self.settings = settings
        self.logger = logger
        self.groupedEvents = EventGroupCommitter(pool: pool, logger: logger)
        self.loginThrottle = LoginThrottle(limits: settings.loginLimits)
        self.decoyHash = (try? PasswordHasher(costExponent: settings.passwordCostExponent).hash("decoy-\(UUID().uuidString)")) ?? PasswordHasher.decoyHash
    }

    // MARK: The one fail-closed path

    /// A handler's result.
    enum Reply: Sendable {
        case json(Data, HTTPResponse.Status)
        case html(String)
        case noContent
        /// A refusal decided inside the transaction, which commits what it wrote (a
        /// failed login's count) with the refusal's event.
        case refused(CareError, journalReason: String? = nil)

        var outcome: RequestAudit.Outcome {
            guard case .refused(let error, let journalReason) = self else { return .success }
            return .refused(error, journalReason: journalReason)
        }
    }

    /// The audit of a request arriving at `context`: its client (``clientAddress(peer:forwardedFor:)``),
    /// user agent and the record its path names.
    func audit(_ request: Request, _ context: CareRequestContext, _ action: AccessAction, _ objectType: String, object: String? = nil) -> RequestAudit {
        let client = clientAddress(peer: context.peerAddress, forwardedFor: request.headers[.forwardedFor])
        return RequestAudit(
            action: action, objectType: objectType, clientIP: client.address, userAgent: request.headers[.userAgent], notes: client.notes,
            pathRecord: Self.pathRecord(request.uri.path), object: object)
    }

    /// Answers a request, every endpoint's, login and logout included: `produce`
    /// makes the reply and its event durable (``committing(_:_:)``,
    /// ``reading(_:_:)``); any error it throws becomes a refusal that records its
    /// own event (``refuse(_:_:identifyingToken:)``). No event, no data.
    /// - Parameter identifyingToken: the request's bearer token, whose account a
    ///   refusal decided before authentication (an oversized body) still names.
    func answer(_ audit: RequestAudit, identifyingToken: String? = nil, _ produce: () async throws -> Reply) async -> Response {
        do {
            return respond(try await produce(), requestID: audit.requestID)
        } catch let error as CareError {
            return await refuse(audit, error, identifyingToken: identifyingToken)
        } catch let error as KeyringError {
            logger.error("decryption failed", metadata: ["osmose.error": "\(error)", "osmose.request": "\(audit.requestID)"])
            return await refuse(audit, CareError(.internalError, "a stored value could not be decrypted"), identifyingToken: identifyingToken)
        } catch {
            // The transaction failed, the event with it: no event, no data.
            logger.error("request failed closed", metadata: ["osmose.error": "\(error)", "osmose.request": "\(audit.requestID)"])
            return await refuse(audit, Self.journalUnavailable, identifyingToken: identifyingToken)
        }
    }

    /// Runs `work` and the events of its outcome in one transaction: a change and
    /// its event commit together or not at all.
    func committing(_ audit: RequestAudit, _ work: @escaping @Sendable (isolated Connection) throws -> Reply) async throws -> Reply {
        try await withCurrentKeys {
            try await pool.transaction { connection in
                let reply = try work(connection)
                try connection.record(audit.events(reply.outcome))
                return reply
            }
        }
    }

    /// Runs a read's `work`, whose statements need no atomicity, then commits its
    /// events (grouped with concurrent reads' events) before the response exists.
    func reading(_ audit: RequestAudit, _ work: @escaping @Sendable (isolated Connection) throws -> Reply) async throws -> Reply {
        let reply = try await withCurrentKeys { try await pool.withConnection { try await $0.perform(work) } }
        let outcome = reply.outcome
        if settings.journalsSuccessfulReads || outcome.result != .success {
            try await groupedEvents.record(audit.events(outcome))
        }
        return reply
    }

    /// Records a refusal's event (committed on its own, apart from anything the
    /// request did, which rolled back), then answers with the error; when even that
    /// event cannot be written, answers 503.
    /// - Parameter identifyingToken: for a request refused before it was
    ///   authenticated, the bearer token it carried, whose account the event names.
    func refuse(_ audit: RequestAudit, _ error: CareError, identifyingToken: String? = nil) async -> Response {
        errorResponse(await recordRefusal(audit, error, identifyingToken: identifyingToken), requestID: audit.requestID)
    }

    /// Records a refusal's event, first completing what it names: the patient of the
    /// record the path names (a refusal decided before the handler read the record
    /// still names it) and the account of `identifyingToken`. These lookups are
    /// best effort: the event is written without what they could not find.
    /// - Returns: `error`, or ``journalUnavailable`` when the event could not be written.
    func recordRefusal(_ audit: RequestAudit, _ error: CareError, identifyingToken: String?) async -> CareError {
        let record = audit.patientID == nil ? audit.pathRecord : nil
        let token = audit.principal == nil ? identifyingToken : nil
        if record != nil || token != nil {
            let (store, sessions) = (self.store, self.sessions)
            do {
                try await pool.withConnection { connection in
                    try await connection.perform { connection in
                        if let record, let patient = try store.patientID(of: record, on: connection) { audit.touched(patient: patient) }
                        if let token, let owner = try sessions.owner(token: token, on: connection) { audit.identify(owner) }
                    }
                }
            } catch {
                logger.warning("a refused request's patient or user could not be looked up", metadata: ["osmose.error": "\(error)", "osmose.request": "\(audit.requestID)"])
            }
        }
        do {
            // Grouped with concurrent reads' and refusals' events: a flood of refused
            // requests shares commits instead of taking a connection each.
            try await groupedEvents.record(audit.events(.refused(error)))
            return error
        } catch {
            logger.error("access event could not be recorded", metadata: ["osmose.error": "\(error)", "osmose.request": "\(audit.requestID)"])
            return Self.journalUnavailable
        }
    }

    static let journalUnavailable = CareError(.journalUnavailable, "the access journal cannot record this request; nothing was done")

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

    // MARK: Reading the request

    /// The body of a POST, PATCH or PUT (empty for other methods): at most
    /// `care.max_body_bytes`, and, when not empty, declared `application/json`
    /// (UTF-8, the only charset accepted).
    func readBody(_ request: Request) async throws -> [UInt8] {
        guard request.method == .post || request.method == .patch || request.method == .put else { return [] }
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > settings.maximumBodyBytes {
            throw CareError(.tooLarge, "the request body is larger than \(settings.maximumBodyBytes) bytes")
        }
        let bytes: [UInt8]
        do {
            bytes = Array(try await request.body.collect(upTo: settings.maximumBodyBytes).readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw CareError(.tooLarge, "the request body is larger than \(settings.maximumBodyBytes) bytes")
        } catch {
            throw CareError(.malformedHTTP, "the request body could not be read")
        }
        guard !bytes.isEmpty else { return bytes }
        guard Self.isJSON(contentType: request.headers[.contentType]) else {
            throw CareError(.unsupportedMediaType, "send the body as Content-Type: application/json (UTF-8)")
        }
        return bytes
    }

    /// True for `application/json`, with no parameter or `charset=utf-8`.
    static func isJSON(contentType: String?) -> Bool {
        guard let contentType else { return false }
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard parts.first == "application/json" else { return false }
        return parts.dropFirst().allSatisfy { $0.replacingOccurrences(of: " ", with: "") == "charset=utf-8" || $0.replacingOccurrences(of: " ", with: "") == "charset=\"utf-8\"" }
    }

    func bearerToken(_ request: Request) -> String? {
        bearerToken(authorization: request.headers[.authorization])
    }

    func bearerToken(authorization header: String?) -> String? {
        guard let header, header.hasPrefix("Bearer ") else { return nil }
        return String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
    }

    /// The client's address as the events record it, and what the event must note
    /// about it. With `care.trust_proxy`, when the peer is a trusted proxy (one of
    /// `care.trusted_proxies`, or any peer on the Unix socket), the last address of
    /// `X-Forwarded-For` (the one the proxy wrote), parsed as an IP address; when it
    /// is not one, the peer's address, noted ``RequestAudit/Note/forwardedForInvalid``.
    /// Otherwise the peer's address.
    func clientAddress(peer: String?, forwardedFor: String?) -> (address: String?, notes: [RequestAudit.Note]) {
        let peer = peer.flatMap(JournalText.canonicalAddress)
        guard settings.trustProxy, let forwardedFor, peer.map(settings.trustedProxies.contains) ?? true else { return (peer, []) }
        let last = forwardedFor.split(separator: ",", omittingEmptySubsequences: false).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        if let address = JournalText.canonicalAddress(last) { return (address, []) }
        return (peer, [.forwardedForInvalid])
    }

    // MARK: Malformed requests

    /// Records the event of a request the HTTP parser refused, with what could be
    /// read of it, and makes its answer (400 `request.malformed_http`).
    func malformed(_ request: MalformedRequest) async -> (HTTPResponse, ByteBuffer) {
        let client = clientAddress(peer: request.peer, forwardedFor: request.field("x-forwarded-for"))
        let audit = RequestAudit(
            action: Self.action(of: request.method ?? ""), objectType: "request", clientIP: client.address, userAgent: request.field("user-agent"),
            notes: client.notes, pathRecord: request.path.flatMap(Self.pathRecord), object: request.method.map { "\($0) \(request.path ?? "")" })
        if let purpose = request.field("osmose-purpose").flatMap(AccessPurpose.init(rawValue:)) { audit.declare(purpose) }
        let error = await recordRefusal(
            audit, CareError(.malformedHTTP, "the request could not be read as HTTP/1.1"), identifyingToken: bearerToken(authorization: request.field("authorization")))
        return (HTTPResponse(status: .init(code: error.code.status), headerFields: errorHeaders(error, requestID: audit.requestID)), errorBody(error, requestID: audit.requestID))
    }

    // MARK: Responses

    func respond(_ reply: Reply, requestID: String) -> Response {
        switch reply {
        case .json(let data, let status):
            return Response(status: status, headers: headers("application/json", requestID), body: .init(byteBuffer: ByteBuffer(bytes: data)))
        case .html(let text):
            return Response(status: .ok, headers: headers("text/html; charset=utf-8", requestID), body: .init(byteBuffer: ByteBuffer(string: text)))
        case .noContent:
            return Response(status: .noContent, headers: headers("application/json", requestID))
        case .refused(let error, _):
            return errorResponse(error, requestID: requestID)
        }
    }

    func errorResponse(_ error: CareError, requestID: String) -> Response {
        Response(
            status: HTTPResponse.Status(code: error.code.status), headers: errorHeaders(error, requestID: requestID),
            body: .init(byteBuffer: errorBody(error, requestID: requestID)))
    }

    /// `{"error": {"code", "message", "request_id"}}`.
    func errorBody(_ error: CareError, requestID: String) -> ByteBuffer {
        struct Body: Encodable {
            struct Detail: Encodable { let code: String; let message: String; let requestId: String }
            let error: Detail
        }
        let data = (try? CareJSON.encoder().encode(Body(error: .init(code: error.code.rawValue, message: error.message, requestId: requestID)))) ?? Data()
        return ByteBuffer(bytes: data)
    }

    func errorHeaders(_ error: CareError, requestID: String) -> HTTPFields {
        var fields = headers("application/json", requestID)
        if error.code.status == 401 { fields[.wwwAuthenticate] = "Bearer" }
        if error.code.status == 429 { fields[.retryAfter] = "2" }
        return fields
    }

    func headers(_ contentType: String, _ requestID: String) -> HTTPFields {
        var fields = HTTPFields()
        fields[.contentType] = contentType
        fields[.cacheControl] = "no-store"
        fields[.contentTypeOptions] = "nosniff"
        fields[.osmoseRequestID] = requestID
        return fields
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Reply {
        .json(try CareJSON.encoder().encode(value), status)
    }
}

extension HTTPField.Name {
    /// The header in which a request names its purpose.
    static let osmosePurpose = HTTPField.Name("Osmose-Purpose")!
    /// The header that returns the request's id, the one its event records.
    static let osmoseRequestID = HTTPField.Name("Osmose-Request-Id")!
    /// The client address the local reverse proxy passes on.
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
    /// `nosniff` on every response.
    static let contentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
}
