public import Foundation
public import Journal

/// The roles of the suite's staff, who use osmosectl and the console: the DPO, the
/// security officer (RSSI) and sysadmins. Their raw values are the journal's actor
/// roles (``Journal/ActorRole``), declared there once.
public enum StaffRole: String, Sendable, Codable, CaseIterable, Hashable {
    case dpo
    case securityOfficer = "security-officer"
    case sysadmin

    /// The role as the journal records it.
    public var actorRole: ActorRole {
        switch self {
        case .dpo: .dpo
        case .securityOfficer: .securityOfficer
        case .sysadmin: .sysadmin
        }
    }

    /// The role named `text` (`dpo`, `security-officer`, `sysadmin`), if any.
    public init?(actorRoleName text: String) {
        guard let role = ActorRole(rawValue: text) else { return nil }
        switch role {
        case .dpo: self = .dpo
        case .securityOfficer: self = .securityOfficer
        case .sysadmin: self = .sysadmin
        default: return nil
        }
    }
}

/// A signed-in staff member.
public struct StaffPrincipal: Sendable, Hashable {
    /// The account's id.
    public let id: UUID
    /// The login name.
    public let username: String
    /// The name shown.
    public let displayName: String
    /// The role.
    public let role: StaffRole

    /// A principal.
    public init(id: UUID, username: String, displayName: String, role: StaffRole) {
        self.id = id
        self.username = username
        self.displayName = displayName
        self.role = role
    }
}
