package import CareRecords
package import Foundation
import Store
package import Journal

/// What one request's access events say, gathered while the request runs: its id,
/// where it came from (client address, user agent), who made it (the authenticated
/// principal, or what a failed login named), why (the purpose) and what it touched
/// (the object and the patient, or every patient a listing returned). ``events(_:)``
/// turns it and the request's outcome into the events: the one place the care
/// service builds them, and bounds and cleans their texts
/// (``Journal/JournalText/bounded(_:to:)``) as the intake records them.
///
/// A request has one event, except a successful listing (a patient search, an
/// episode list), which has one per record it returned, each naming that record's
/// patient, all under the request's id: `journal search --patient` then finds the
/// request for each patient listed.
///
/// A class shared by the request's task and the connection's thread where its
/// handler runs, so that a refused request's event still names what the handler
/// learned before the error unwound it. Sendable: its constants are `let`, and what
/// the handler learns is behind a `Locked` value.
package final class RequestAudit: Sendable {
    /// How a request ended, as its event records it.
    package enum Outcome: Sendable {
        /// The request was served.
        case success
        /// The request was refused with `error`; the event's reason is `journalReason`
        /// when given (a login refused for a disabled account answers as for a wrong
        /// password, and records why), else the error's code.
        case refused(CareError, journalReason: String? = nil)

        /// `denied` for an authentication or authorisation refusal (401, 403, 429), `error` for anything else.
        package var result: AccessResult {
            switch self {
            case .success: .success
            case .refused(let error, _): [401, 403, 429].contains(error.code.status) ? .denied : .error
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

    /// Something about the request itself that its event's reason records after the
    /// outcome's code, separated by a space.
    package enum Note: String, Sendable, Hashable {
        /// `X-Forwarded-For` came from a trusted proxy but was not an IP address: the
        /// peer's address is recorded instead.
        case forwardedForInvalid = "x-forwarded-for-invalid"
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
    /// What the event's reason notes about the request.
    package let notes: [Note]
    /// The record the request's path names, if any.
    package let pathRecord: CareStore.PathRecord?

    private struct Learned {
        var principal: Principal?
        var attemptedUsername: String?
        var purpose: AccessPurpose?
        var objectID: String?
        var patientID: UUID?
        var note: String?
        var listed: [(object: UUID, patient: UUID)]?
    }

    private let learned: Locked<Learned>

    /// Starts the audit of a request.
    /// - Parameters:
    ///   - requestID: the request's id; a fresh lower-case UUID unless given.
    ///   - action: what the request does.
    ///   - objectType: the kind of object it acts on.
    ///   - clientIP: the client's address.
    ///   - userAgent: the client's `User-Agent` header, unbounded: ``events(_:)`` bounds it.
    ///   - notes: what the reason notes about the request.
    ///   - pathRecord: the record the path names: the event's object, and its patient
    ///     for a patient (another record's patient is looked up, ``touched(object:patient:)``).
    ///   - object: the object's id as text, in place of the path record's (a request no route matched records its method and path).
    package init(
        requestID: String = UUID().uuidString.lowercased(), action: AccessAction, objectType: String, clientIP: String?, userAgent: String?,
        notes: [Note] = [], pathRecord: CareStore.PathRecord? = nil, object: String? = nil
    ) {
        self.requestID = requestID
        self.action = action
        self.objectType = objectType
        self.clientIP = clientIP
        self.userAgent = userAgent
        self.notes = notes
        self.pathRecord = pathRecord
        var learned = Learned()
        learned.objectID = object ?? pathRecord.map { $0.id.uuidString.lowercased() }
        if case .patient(let id) = pathRecord { learned.patientID = id }
        self.learned = Locked(learned)
    }

    /// Records who the request acts as, once authenticated (or once a login found
    /// the account, or a refused token's account was found).
    package func identify(_ principal: Principal) {
        learned.withLock { $0.principal = principal }
    }

    /// Records what a login named when no account matched it: the keyed hash
    /// (``CareRecords/CareStore/journalName(ofUnknownUsername:)``), never the text.
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

    /// Records a stable code the event carries as its reason when the request
    /// succeeds (e.g. the ground on which a restricted record was opened).
    package func note(_ reason: String) {
        learned.withLock { $0.note = reason }
    }

    /// Records the records a listing returned, each with its patient: a successful
    /// request then has one event per record.
    package func listed(_ records: [(object: UUID, patient: UUID)]) {
        learned.withLock { $0.listed = records }
    }

    /// Who the request acts as, when known.
    package var principal: Principal? { learned.withLock { $0.principal } }

    /// The patient recorded so far.
    package var patientID: UUID? { learned.withLock { $0.patientID } }

    /// The access events of the request ending with `outcome`, stamped now: one,
    /// or, for a successful listing, one per record listed (one with no patient
    /// when the listing was empty).
    package func events(_ outcome: Outcome) -> [AccessEvent] {
        let learned = learned.withLock { $0 }
        let base = event(outcome, learned)
        guard case .success = outcome, let listed = learned.listed, !listed.isEmpty else { return [base] }
        return listed.map { record in
            var event = base
            event.objectID = record.object.uuidString.lowercased()
            event.patientID = record.patient
            return event
        }
    }

    /// The request's first event (its only one unless a successful listing).
    package func event(_ outcome: Outcome) -> AccessEvent {
        events(outcome)[0]
    }

    private func event(_ outcome: Outcome, _ learned: Learned) -> AccessEvent {
        var event = AccessEvent(source: SuiteProgram.care.rawValue, requestID: requestID, action: action, objectType: objectType, result: outcome.result)
        event.actorUserID = learned.principal?.userID
        event.actorUsername = (learned.principal?.username ?? learned.attemptedUsername).map { JournalText.bounded($0, to: JournalText.usernameLimit) }
        event.actorRole = learned.principal?.role.rawValue
        // Team codes are at most 32 ASCII characters (care.teams' CHECK), within actor_team's 64.
        event.actorTeam = learned.principal?.teamCode
        event.purpose = learned.purpose
        event.objectID = learned.objectID.map { JournalText.bounded($0, to: JournalText.objectIDLimit) }
        event.patientID = learned.patientID
        let reason = ([outcome.reason ?? learned.note].compactMap { $0 } + notes.map(\.rawValue)).joined(separator: " ")
        event.reason = reason.isEmpty ? nil : JournalText.bounded(reason, to: JournalText.reasonLimit)
        event.clientIP = clientIP
        event.userAgent = userAgent.map { JournalText.bounded($0, to: JournalText.userAgentLimit) }
        return event
    }
}
