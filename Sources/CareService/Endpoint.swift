import CareRecords
import Foundation
import HTTPTypes
import Hummingbird
import Journal
import Store

extension CareAPI {
    /// What an endpoint is, for the policy and the journal.
    struct Endpoint: Sendable {
        let resource: AccessPolicy.Resource
        let policyAction: String
        let journalAction: AccessAction
        let objectType: String
    }

    /// Everything a handler needs, on the connection's thread.
    struct Call: Sendable {
        let principal: Principal
        let purpose: AccessPurpose
        let teamScoped: Bool
        let body: [UInt8]
        let query: [String: String]
        /// Where the handler records the object and patient it touched.
        let audit: RequestAudit
    }

    static let missingToken = CareError(.authenticationRequired, "send Authorization: Bearer <token>")

    /// Serves an endpoint: reads the body, then, on one pooled connection,
    /// authenticates the token, checks the purpose and the policy, runs `body`, and
    /// makes the event durable (with the change for a write, before the response
    /// for a read). Handlers cannot skip the event: they only return a reply.
    func handle(
        _ request: Request, _ context: CareRequestContext, _ endpoint: Endpoint,
        _ body: @escaping @Sendable (Call, isolated Connection) throws -> Reply
    ) async -> Response {
        let audit = audit(request, context, endpoint.journalAction, endpoint.objectType)
        let token = bearerToken(request)
        let purposeHeader = request.headers[.osmosePurpose]
        // The purpose the request declares is recorded even when it is refused before the purpose is checked.
        if let purpose = purposeHeader.flatMap(AccessPurpose.init(rawValue:)) { audit.declare(purpose) }
        return await answer(audit, identifyingToken: token) {
            let bytes = try await readBody(request)
            let query = Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }, uniquingKeysWith: { first, _ in first })
            let api = self
            let work: @Sendable (isolated Connection) throws -> Reply = { connection in
                guard let token else { throw Self.missingToken }
                let principal = try api.authenticate(token, audit, on: connection)
                guard let purposeHeader else { throw CareError(.purposeRequired, "name the purpose in the Osmose-Purpose header") }
                guard let purpose = AccessPurpose(rawValue: purposeHeader) else {
                    throw CareError(.invalidPurpose, "Osmose-Purpose must be one of \(AccessPurpose.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                audit.declare(purpose)
                let decision = api.policy.decide(role: principal.role, resource: endpoint.resource, action: endpoint.policyAction, purpose: purpose)
                guard decision.allowed else {
                    throw CareError(.forbidden, "the access policy does not allow a \(principal.role.rawValue) to \(endpoint.policyAction) \(endpoint.resource.rawValue) for \(purpose.rawValue)")
                }
                if let name = query.first(where: { $0.key.contains("\0") || $0.value.contains("\0") })?.key {
                    throw CareError(.invalidQuery, "query parameter \(JournalText.bounded(name, to: 40)) contains a NUL character")
                }
                let call = Call(principal: principal, purpose: purpose, teamScoped: decision.teamScoped, body: bytes, query: query, audit: audit)
                return try body(call, connection)
            }
            if endpoint.journalAction == .read {
                return try await reading(audit, work)
            }
            return try await committing(audit, work)
        }
    }

    /// Serves an endpoint whose path names a record (`…/{id}`): as
    /// ``handle(_:_:_:_:)``, with the id parsed once and handed to `body`. A
    /// malformed id is refused (400 `request.invalid_field`) after the checks that
    /// come first (token, purpose, policy), as any handler's refusal is. The event
    /// names the record as its object from the start (``RequestAudit/pathRecord``),
    /// and its patient even when the request is refused before the record is read.
    func handleRecord(
        _ request: Request, _ context: CareRequestContext, _ endpoint: Endpoint,
        _ body: @escaping @Sendable (Call, UUID, isolated Connection) throws -> Reply
    ) async -> Response {
        let recordID = RecordID.inPath(context)
        return await handle(request, context, endpoint) { call, connection in
            try body(call, try recordID.get().uuid, connection)
        }
    }

    /// The principal `token` stands for, recorded in `audit`; a refused token's
    /// account (expired, revoked, disabled) is recorded too.
    func authenticate(_ token: String, _ audit: RequestAudit, on connection: isolated Connection) throws -> Principal {
        try sessions.authenticate(token: token, on: connection) { audit.identify($0) }
    }
}
