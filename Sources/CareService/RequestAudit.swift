package import CareRecords
package import Foundation
package import Journal
import Synchronization

/// What one request's access event says, gathered while the request runs: its id,
/// where it came from (client address, user agent), who made it (the authenticated
/// principal, or the username a failed login named), why (the purpose) and what it
/// touched (the object and the patient). ``event(_:)`` turns it and the request's
/// outcome into the event: the one place the care service builds one, and bounds
/// its texts in code points as the intake's CHECKs count them.
///
/// A class shared by the request's task and the connection's thread where its
/// handler runs, so that a refused request's event still names what the handler
/// learned before the error unwound it. Sendable: its constants are `let`, and what
/// the handler learns is behind a `Mutex`.
package final class RequestAudit: Sendable {
    /// How a request ended, as its event records it.
    package enum Outcome: Sendable {
        /// The request was served.
        case success
        /// The request was refused with `error`; the event's reason is `journalReason`
        /// when given (a login refused for a disabled account answers as for a wrong
        /// password, and records why), else the error's code.
        case refused(CareError, journalReason: String? = nil)

        /// `denied` for an authentication or authorisation refusal (401, 403), `error` for anything else.
        package var result: AccessResult {
            switch self {
            case .success: .success
            case .refused(let error, _): error.code.status == 401 || error.code.status == 403 ? .denied : .error
            }
        }

        /// The stable code the event records; nil on success.
        package var reason: String? {
            switch self {
            case .success: nil
            case .refused(let error, let journalReason): journalReason ?? error.code.rawValue
            }
        }
    }

    /// The request's id, returned in `Osmose-Request-Id` and recorded in the event.
    package let requestID: String
    /// What the request does.
    package let action: AccessAction
    /// The kind of object it acts on (`patient`, `episode-list`, `session`…).
    package let objectType: String
    /// The client's IP address, when known.
    package let clientIP: String?
    /// The client's `User-Agent`, as sent.
    package let userAgent: String?

    private struct Learned {
        var principal: Principal?
        var attemptedUsername: String?
        var purpose: AccessPurpose?
        var objectID: String?
        var patientID: UUID?
        var note: String?
    }

    private let learned = Mutex(Learned())

    /// Starts the audit of a request.
    /// - Parameters:
    ///   - requestID: the request's id; a fresh lower-case UUID unless given.
    ///   - action: what the request does.
    ///   - objectType: the kind of object it acts on.
    ///   - clientIP: the client's address.
    ///   - userAgent: the client's `User-Agent` header, unbounded: ``event(_:)`` bounds it.
    package init(requestID: String = UUID().uuidString.lowercased(), action: AccessAction, objectType: String, clientIP: String?, userAgent: String?) {
        self.requestID = requestID
        self.action = action
        self.objectType = objectType
        self.clientIP = clientIP
        self.userAgent = userAgent
    }

    /// Records who the request acts as, once authenticated (or once a login found the account).
    package func identify(_ principal: Principal) {
        learned.withLock { $0.principal = principal }
    }

    /// Records the username a login named when no account matched it.
    package func attempted(username: String) {
        learned.withLock { $0.attemptedUsername = username }
    }

    /// Records the purpose the request declared.
    package func declare(_ purpose: AccessPurpose) {
        learned.withLock { $0.purpose = purpose }
    }

    /// Records the object and the patient the request touched; an argument left nil
    /// keeps what was recorded before.
    package func touched(object: UUID? = nil, patient: UUID? = nil) {
        learned.withLock { learned in
            if let object { learned.objectID = object.uuidString.lowercased() }
            if let patient { learned.patientID = patient }
        }
    }

    /// The patient the request touched so far, if any.
    package var touchedPatient: UUID? { learned.withLock { $0.patientID } }

    /// Records a stable code the event carries as its reason when the request
    /// succeeds (e.g. the ground on which a restricted record was opened).
    package func note(_ reason: String) {
        learned.withLock { $0.note = reason }
    }

    /// The access event of the request ending with `outcome`, stamped now.
    package func event(_ outcome: Outcome) -> AccessEvent {
        let learned = learned.withLock { $0 }
        var event = AccessEvent(source: SuiteProgram.care.rawValue, requestID: requestID, action: action, objectType: objectType, result: outcome.result)
        event.actorUserID = learned.principal?.userID
        event.actorUsername = (learned.principal?.username ?? learned.attemptedUsername).map { JournalText.bounded($0, to: JournalText.usernameLimit) }
        event.actorRole = learned.principal?.role.rawValue
        // Team codes are at most 32 ASCII characters (care.teams' CHECK), within actor_team's 64.
        event.actorTeam = learned.principal?.teamCode
        event.purpose = learned.purpose
        event.objectID = learned.objectID.map { JournalText.bounded($0, to: JournalText.objectIDLimit) }
        event.patientID = learned.patientID
        event.reason = (outcome.reason ?? learned.note).map { JournalText.bounded($0, to: JournalText.reasonLimit) }
        event.clientIP = clientIP
        event.userAgent = userAgent.map { JournalText.bounded($0, to: JournalText.userAgentLimit) }
        return event
    }
}
