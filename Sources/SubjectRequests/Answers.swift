import Cryptography
import Foundation
import Journal
public import Store

/// What erasing a departed staff member's data changes (or would change, dry run).
public struct StaffErasure: Sendable, Hashable, Codable {
    /// The account's login name (kept: the access journal names it).
    public let username: String
    /// The display name's digest before and the value after.
    public let displayNameBefore: String
    public let displayNameAfter: String
    /// Sessions still open, ended.
    public let sessionsEnded: Int
    /// Whether it was carried out (false for a dry run).
    public let carriedOut: Bool
}

/// Reasoned answers to erasure, objection and portability requests, and the
/// erasure of a departed staff member's personal data outside the health record.
public struct Answers: Sendable {
    let register: RequestRegister
    let controller: ControllerStatus

    /// Answers of `register`'s requests for a controller of `controller` status.
    public init(register: RequestRegister, controller: ControllerStatus) {
        self.register = register
        self.controller = controller
    }

    /// The answer the product proposes to request `number`.
    public func proposal(number: Int64, on connection: isolated Connection) throws -> LegalAnswer {
        let record = try register.request(number: number, on: connection)
        return try LegalAssessment.assess(kind: record.kind, aboutStaff: record.staffUsername != nil, controller: controller)
    }

    /// Records the answer: the proposal, or the DPO's own decision with `reasons`
    /// (required then); its text is kept as the request's answer note.
    /// - Returns: the answer recorded and the letter's text.
    /// - Throws: ``SubjectRequestError`` `.identityNotChecked`, `.invalidArgument` for a decision without reasons.
    public func answer(number: Int64, decision: RequestOutcome?, reasons: String?, on connection: isolated Connection) throws -> (LegalAnswer, String) {
        let record = try register.openRequest(number: number, on: connection)
        guard record.identityCheck != nil else {
            throw SubjectRequestError(.identityNotChecked, "request \(number): check the requester's identity before answering (osmosectl dsar identity)")
        }
        let proposal = try LegalAssessment.assess(kind: record.kind, aboutStaff: record.staffUsername != nil, controller: controller)
        if let decision, decision != proposal.outcome {
            guard let reasons, !reasons.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw SubjectRequestError(.invalidArgument, "deciding \(decision.rawValue) instead of the proposed \(proposal.outcome.rawValue) needs --reasons")
            }
        }
        let outcome = decision ?? proposal.outcome
        var letter = "Demande n° \(record.number) (\(record.kind.article)) reçue le \(record.receivedOn.french).\n\n"
        letter += outcome == proposal.outcome ? proposal.text : "Décision du délégué à la protection des données : \(outcome.rawValue)."
        if let reasons { letter += "\n\nMotifs : \(reasons)" }
        letter += "\n\nFondements :\n" + proposal.basis.map { "- \($0)" }.joined(separator: "\n")
        letter += "\n\nVous pouvez introduire une réclamation auprès de la CNIL (www.cnil.fr) et former un recours juridictionnel."
        _ = try register.addNote(number: number, letter, kind: "answer", on: connection)
        try EvidenceLog.append(
            record, kind: "answered",
            details: [
                "outcome": outcome.rawValue, "proposed": proposal.outcome.rawValue, "grounds": proposal.grounds.joined(separator: ","),
                "letter": digest(letter), "restriction_offered": String(proposal.offersRestriction),
            ], actor: register.actor, on: connection)
        return (proposal, letter)
    }

    /// Erases a departed staff member's personal data outside the health record:
    /// the display name and password hash are overwritten, the account stays
    /// disabled and its open sessions end; the login name stays (the journal names it).
    /// With `dryRun`, says what would change and changes nothing.
    /// - Throws: ``SubjectRequestError`` `.wrongKind`, `.identityNotChecked`, `.staffActive` for an account not disabled yet.
    public func eraseStaffData(number: Int64, dryRun: Bool, on connection: isolated Connection) throws -> StaffErasure {
        let record = try register.openRequest(number: number, on: connection)
        guard record.kind == .erasure, let username = record.staffUsername else {
            throw SubjectRequestError(.wrongKind, "request \(number) is not an erasure request about a staff account")
        }
        guard record.identityCheck != nil else {
            throw SubjectRequestError(.identityNotChecked, "request \(number): check the requester's identity before erasing anything")
        }
        guard let account = try connection.query(
            "SELECT id, display_name, disabled FROM care.users WHERE username = $1 FOR UPDATE", [username]
        ).singleRow() else { throw SubjectRequestError(.unknownStaff, "the account of request \(number) no longer exists") }
        guard try account.bool("disabled") else {
            throw SubjectRequestError(
                .staffActive, "the account \(username) is still active: its data is erased after departure, once disabled (osmosectl users disable \(username))")
        }
        let id = try account.uuid("id")
        let after = "compte effacé " + String(id.uuidString.lowercased().prefix(8))
        let before = try account.string("display_name")
        let open = try connection.query(
            "SELECT count(*) AS n FROM care.sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > clock_timestamp()", [id]
        ).rows[0].int("n")
        let erasure = StaffErasure(username: username, displayNameBefore: digest(before), displayNameAfter: after, sessionsEnded: open, carriedOut: !dryRun)
        guard !dryRun else { return erasure }
        guard before != after else {
            throw SubjectRequestError(.notReady, "the data of account \(username) was already erased")
        }
        try connection.query(
            "UPDATE care.users SET display_name = $2, password_hash = $3, disabled = true WHERE id = $1",
            [id, after, "!erased " + RequestRegister.moment(Date())])
        try connection.query("UPDATE care.sessions SET revoked_at = clock_timestamp() WHERE user_id = $1 AND revoked_at IS NULL", [id])
        try connection.record(
            AccessEvent.system(by: register.actor, action: .userAdmin, objectType: "user", objectID: id.uuidString.lowercased(), reason: "dsar.staff-data-erased"))
        try EvidenceLog.append(
            record, kind: "staff-data-erased",
            details: [
                "account": username, "display_name_before": erasure.displayNameBefore, "display_name_after": after, "password_hash": "overwritten",
                "sessions_ended": String(open), "kept": "login name (access journal, RGPD art. 17(3)(b))",
            ], actor: register.actor, on: connection)
        return erasure
    }
}
