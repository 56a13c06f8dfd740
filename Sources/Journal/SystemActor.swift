public import Foundation

/// The actor roles the journal knows (`journal.intake.actor_role`'s CHECK lists the
/// same values). Care users carry `agent`, `manager` or `admin`; the suite's staff
/// carry `dpo`, `security-officer` or `sysadmin`; the suite's own programs `system`.
public enum ActorRole: String, Sendable, Codable, CaseIterable {
    case agent, manager, admin, system, dpo
    case securityOfficer = "security-officer"
    case sysadmin
}

/// The suite's programs, as they name themselves in the journal's `source` column.
public enum SuiteProgram: String, Sendable, Codable, CaseIterable {
    case osmosectl
    case care = "osmose-care"
    case journald = "osmose-journald"
    case keyd = "osmose-keyd"
    case backupd = "osmose-backupd"
    case retentiond = "osmose-retentiond"
    case dsard = "osmose-dsard"
    case console = "osmose-console"
}

/// Who performs an administrative action outside a care request: a person running
/// `osmosectl`, or one of the suite's daemons acting on its own schedule.
public struct SystemActor: Sendable, Hashable {
    /// The name recorded as the event's actor (and in records such as `created_by`):
    /// the operator's identity, or the daemon's program name.
    public let name: String
    /// The program that writes the event (`source`).
    public let program: SuiteProgram
    /// The actor's role.
    public let role: ActorRole

    /// A person running `osmosectl` in `role`.
    /// - Parameters:
    ///   - identity: who ran it, e.g. `alice@host via osmosectl 0.9`; its first word is recorded as the username.
    ///   - role: the role the command acts in (`sysadmin` for accounts and keys, `security-officer` for journal exports…).
    public static func `operator`(_ identity: String, role: ActorRole) -> SystemActor {
        SystemActor(name: identity, program: .osmosectl, role: role)
    }

    /// A member of the suite's staff signed in to osmose-console, acting in `role`
    /// through its pages (the DPO registering a request, approving a plan…).
    /// - Parameter identity: e.g. `dominique.dpo via osmose-console`; its first word is recorded as the username.
    public static func console(_ identity: String, role: ActorRole) -> SystemActor {
        SystemActor(name: identity, program: .console, role: role)
    }

    /// A daemon of the suite acting on its own (a scheduled rotation, a backup, an adopted key).
    public static func daemon(_ program: SuiteProgram) -> SystemActor {
        SystemActor(name: program.rawValue, program: program, role: .system)
    }

    /// The username recorded in the journal: the identity's first word, bounded as the intake's column is.
    public var username: String {
        JournalText.bounded(String(name.split(separator: " ").first ?? "unknown"), to: JournalText.usernameLimit)
    }
}

extension AccessEvent {
    /// The event of an administrative action by `actor`: one place that fills the
    /// source, a fresh request id, the actor's username and role, and bounds the
    /// free texts as the intake's columns are bounded.
    /// - Parameters:
    ///   - actor: who acted.
    ///   - action: what was done (`key-admin`, `backup-admin`, `export`…).
    ///   - objectType: the kind of object (`data-key`, `backup`, `journal`…).
    ///   - objectID: the object's id, if any.
    ///   - patientID: the patient concerned, if any.
    ///   - purpose: the purpose; administration unless said otherwise.
    ///   - result: how it ended; success unless said otherwise.
    ///   - reason: a stable code or short text saying what was done; never patient data.
    public static func system(
        by actor: SystemActor, action: AccessAction, objectType: String, objectID: String? = nil, patientID: UUID? = nil,
        purpose: AccessPurpose = .administration, result: AccessResult = .success, reason: String? = nil
    ) -> AccessEvent {
        var event = AccessEvent(
            source: actor.program.rawValue, requestID: UUID().uuidString.lowercased(), action: action, objectType: objectType, result: result)
        event.actorUsername = actor.username
        event.actorRole = actor.role.rawValue
        event.objectID = objectID.map { JournalText.bounded($0, to: JournalText.objectIDLimit) }
        event.patientID = patientID
        event.purpose = purpose
        event.reason = reason.map { JournalText.bounded($0, to: JournalText.reasonLimit) }
        return event
    }
}
