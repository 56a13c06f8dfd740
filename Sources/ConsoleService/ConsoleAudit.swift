import Foundation
import Journal
import Store
import StaffAccounts
import Synchronization

/// What one console request's access event says: the request's id, client, who
/// (the signed-in staff member, or the username a failed sign-in named), what page
/// or action, the patient a search concerned. ``event(_:)`` is the one place the
/// console builds an event; every page view and action records one.
///
/// Sendable: its constants are `let`, what the handler learns is behind a `Locked` value.
final class ConsoleAudit: Sendable {
    /// How a request ended, as its event records it.
    enum Outcome: Sendable {
        case success
        case denied(reason: String)
        case error(reason: String)

        var result: AccessResult {
            switch self {
            case .success: .success
            case .denied: .denied
            case .error: .error
            }
        }

        var reason: String? {
            switch self {
            case .success: nil
            case .denied(let reason), .error(let reason): reason
            }
        }
    }

    let requestID: String
    let action: AccessAction
    let objectType: String
    let clientIP: String?
    let userAgent: String?

    private struct Learned {
        var principal: StaffPrincipal?
        var attemptedUsername: String?
        var objectID: String?
        var patientID: UUID?
        var purpose: AccessPurpose?
        var action: AccessAction?
        var detail: String?
        var recorded = false
    }

    private let learned = Locked(Learned())

    init(action: AccessAction, objectType: String, clientIP: String?, userAgent: String?) {
        self.requestID = UUID().uuidString.lowercased()
        self.action = action
        self.objectType = objectType
        self.clientIP = clientIP
        self.userAgent = userAgent
    }

    /// Who the request acts as.
    func identify(_ principal: StaffPrincipal) { learned.withLock { $0.principal = principal } }
    /// The username a sign-in named when no account matched it.
    func attempted(username: String) { learned.withLock { $0.attemptedUsername = username } }
    /// The object (an entry's sequence number, a checkpoint, a request's number) and
    /// the patient the request concerned, read for `purpose` (the security officer's
    /// audit; the DPO's subject requests).
    func touched(object: String? = nil, patient: UUID? = nil, purpose: AccessPurpose = .audit) {
        learned.withLock { learned in
            if let object { learned.objectID = object }
            if let patient {
                learned.patientID = patient
                learned.purpose = purpose
            }
        }
    }

    /// The purpose of a request that concerns no one patient (the DPO's register: subject requests).
    func serves(_ purpose: AccessPurpose) { learned.withLock { $0.purpose = purpose } }
    /// The request turned out to be another action than announced (a download is an export).
    func acted(_ action: AccessAction) { learned.withLock { $0.action = action } }
    /// A short, data-free note recorded as the reason of a successful event (a verify run's result).
    func note(_ detail: String) { learned.withLock { $0.detail = detail } }

    var principal: StaffPrincipal? { learned.withLock { $0.principal } }

    /// Records the success event in the caller's transaction, with the change it
    /// describes: the two commit together or not at all.
    func recordSuccess(on connection: isolated Connection) throws {
        try connection.record(event(.success))
        learned.withLock { $0.recorded = true }
    }

    /// Says the handler recorded the event itself (a refusal's or an error's, in a transaction of its own).
    func markRecorded() { learned.withLock { $0.recorded = true } }

    /// True once the handler recorded the event with its change.
    var isRecorded: Bool { learned.withLock { $0.recorded } }

    /// The access event of the request ending with `outcome`.
    func event(_ outcome: Outcome) -> AccessEvent {
        let learned = learned.withLock { $0 }
        var event = AccessEvent(
            source: SuiteProgram.console.rawValue, requestID: requestID, action: learned.action ?? action, objectType: objectType, result: outcome.result)
        event.actorUserID = learned.principal?.id
        event.actorUsername = (learned.principal?.username ?? learned.attemptedUsername).map { JournalText.bounded($0, to: JournalText.usernameLimit) }
        event.actorRole = learned.principal?.role.actorRole.rawValue
        event.purpose = learned.purpose ?? (learned.principal == nil ? nil : .administration)
        event.objectID = learned.objectID.map { JournalText.bounded($0, to: JournalText.objectIDLimit) }
        event.patientID = learned.patientID
        event.reason = (outcome.reason ?? learned.detail).map { JournalText.bounded($0, to: JournalText.reasonLimit) }
        event.clientIP = clientIP
        event.userAgent = userAgent.map { JournalText.bounded($0, to: JournalText.userAgentLimit) }
        return event
    }
}
