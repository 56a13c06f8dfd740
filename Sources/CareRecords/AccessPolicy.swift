public import Settings
import Foundation
public import Journal

/// What a role may do, read from `policies/access.yaml`. Default deny: an action
/// is allowed only when a rule names the role, the resource, the action and the
/// request's purpose. Every rule states its scope (`all` or `team`): team-scoped
/// rules further require the record to belong to, or be shared with, the user's
/// team; the handlers check that on the record.
public struct AccessPolicy: Sendable {
    /// The resources the care service exposes.
    public enum Resource: String, Sendable, CaseIterable {
        case patient, episode, transmission, user
    }

    /// Which records of a resource a rule reaches.
    public enum Scope: String, Sendable {
        /// Any record.
        case all
        /// Records of the user's team, or shared with it.
        case team
    }

    /// One allow rule.
    public struct Rule: Sendable, Hashable {
        public let role: Role
        public let resource: Resource
        public let actions: Set<String>
        public let purposes: Set<AccessPurpose>
        public let scope: Scope
    }

    /// The actions each resource has.
    public static let actions: [Resource: Set<String>] = [
        .patient: ["search", "read", "create", "update", "history"],
        .episode: ["list", "read", "create", "update", "close", "history", "export"],
        .transmission: ["list", "create", "retract"],
        .user: ["list"],
    ]

    /// The rules, in file order.
    public let rules: [Rule]

    /// The decision for one request before any record is read.
    public struct Decision: Sendable, Hashable {
        /// Whether any rule allows it.
        public let allowed: Bool
        /// When allowed only for the user's team's records.
        public let teamScoped: Bool
    }

    /// Decides whether `role` may do `action` on `resource` for `purpose`.
    /// When several rules allow it, the widest scope wins.
    public func decide(role: Role, resource: Resource, action: String, purpose: AccessPurpose?) -> Decision {
        let matching = rules.filter {
            $0.role == role && $0.resource == resource && $0.actions.contains(action) && purpose.map($0.purposes.contains) ?? false
        }
        guard !matching.isEmpty else { return Decision(allowed: false, teamScoped: false) }
        return Decision(allowed: true, teamScoped: !matching.contains { $0.scope == .all })
    }

    /// Reads and validates an access policy file.
    /// - Throws: ``Settings/ConfigurationError`` naming the file, line and reason.
    public static func load(path: String) throws -> AccessPolicy {
        try parse(SettingsDocument(contentsOf: path))
    }

    /// Validates an already parsed document.
    public static func parse(_ document: SettingsDocument) throws -> AccessPolicy {
        let root = try document.root(allowedKeys: ["default", "rules"])
        guard try root.choice("default", from: ["deny"]) == "deny" else { throw root.error("default", "only deny is supported") }
        let entries = try root.mappings("rules", allowedKeys: ["role", "resource", "actions", "purposes", "scope"])
        guard !entries.isEmpty else { throw root.error("rules", "at least one rule is needed") }
        var rules: [Rule] = []
        for entry in entries {
            let role = Role(rawValue: try entry.choice("role", from: Role.allCases.map(\.rawValue)))!
            let resource = Resource(rawValue: try entry.choice("resource", from: Resource.allCases.map(\.rawValue)))!
            let actions = try entry.strings("actions")
            let known = Self.actions[resource]!
            guard !actions.isEmpty else { throw entry.error("actions", "list at least one action") }
            if let unknown = actions.first(where: { !known.contains($0) }) {
                throw entry.error("actions", "\(unknown) is not an action on \(resource.rawValue); known: \(known.sorted().joined(separator: ", "))")
            }
            let purposeNames = try entry.strings("purposes")
            guard !purposeNames.isEmpty else { throw entry.error("purposes", "list at least one purpose") }
            let purposes = try purposeNames.map { name -> AccessPurpose in
                guard let purpose = AccessPurpose(rawValue: name) else {
                    throw entry.error("purposes", "\(name) is not a purpose; known: \(AccessPurpose.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return purpose
            }
            if role == .admin && resource != .user {
                throw entry.error("resource", "an admin manages accounts and may not be given care content")
            }
            // Explicit: a rule that forgot its scope must not silently reach every team's records.
            let scope = Scope(rawValue: try entry.choice("scope", from: ["all", "team"]))!
            rules.append(Rule(role: role, resource: resource, actions: Set(actions), purposes: Set(purposes), scope: scope))
        }
        return AccessPolicy(rules: rules)
    }
}
