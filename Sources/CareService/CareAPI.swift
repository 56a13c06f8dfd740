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

    /// The audit of a request arriving at `context`.
    func audit(_ request: Request, _ context: CareRequestContext, _ action: AccessAction, _ objectType: String) -> RequestAudit {
        RequestAudit(action: action, objectType: objectType, clientIP: clientAddress(request, context), userAgent: request.headers[.userAgent])
    }

    /// Answers a request, every endpoint's, login and logout included: `produce`
    /// makes the reply and its event durable (``committing(_:_:)``,
    /// ``reading(_:_:)``); any error it throws becomes a refusal that records its
    /// own event (``refuse(_:_:)``). No event, no data.
    func answer(_ audit: RequestAudit, _ produce: () async throws -> Reply) async -> Response {
        do {
            return respond(try await produce(), requestID: audit.requestID)
        } catch let error as CareError {
            return await refuse(audit, error)
        } catch let error as KeyringError {
            logger.error("decryption failed", metadata: ["osmose.error": "\(error)", "osmose.request": "\(audit.requestID)"])
            return await refuse(audit, CareError(.internalError, "a stored value could not be decrypted"))
        } catch {
            // The transaction failed, the event with it: no event, no data.
            logger.error("request failed closed", metadata: ["osmose.error": "\(error)", "osmose.request": "\(audit.requestID)"])
            return await refuse(audit, Self.journalUnavailable)
        }
    }

    /// Runs `work` and the event of its outcome in one transaction: a change and
    /// its event commit together or not at all.
    func committing(_ audit: RequestAudit, _ work: @escaping @Sendable (isolated Connection) throws -> Reply) async throws -> Reply {
        try await withCurrentKeys {
            try await pool.transaction { connection in
                let reply = try work(connection)
                try connection.record(audit.event(reply.outcome))
                return reply
            }
        }
    }

    /// Runs a read's `work`, whose statements need no atomicity, then commits its
    /// event (grouped with concurrent reads' events) before the response exists.
    func reading(_ audit: RequestAudit, _ work: @escaping @Sendable (isolated Connection) throws -> Reply) async throws -> Reply {
        let reply = try await withCurrentKeys { try await pool.withConnection { try await $0.perform(work) } }
        let outcome = reply.outcome
        if settings.journalsSuccessfulReads || outcome.result != .success {
            try await readEvents.record(audit.event(outcome))
        }
        return reply
    }

    /// Records a refusal's event in its own transaction, then answers with the
    /// error; when even that event cannot be written, answers 503.
    func refuse(_ audit: RequestAudit, _ error: CareError) async -> Response {
        let event = audit.event(.refused(error))
        do {
            try await pool.transaction { connection in try connection.record(event) }
            return errorResponse(error, requestID: audit.requestID)
        } catch {
            logger.error("access event could not be recorded", metadata: ["osmose.error": "\(error)", "osmose.request": "\(audit.requestID)"])
            return errorResponse(Self.journalUnavailable, requestID: audit.requestID)
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
            let forwarded = request.headers[.forwardedFor]?.split(separator: ",").last
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
        case .noContent:
            return Response(status: .noContent, headers: headers("application/json", requestID))
        case .refused(let error, _):
            return errorResponse(error, requestID: requestID)
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
