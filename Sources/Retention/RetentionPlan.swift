import Cryptography
public import Foundation
public import Settings

/// The classes of data a plan acts on.
public enum DataClass: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    /// Months of the access journal (archive, then purge).
    case journal
    /// Cold archives of journal months past their own term (destroy).
    case coldArchives = "cold-archives"
    /// A patient's care record past its R1112-7 term (pseudonymise).
    case careRecords = "care-records"
    /// Closed data-subject requests past their term (destroy their content).
    case subjectRequests = "subject-requests"
    /// Ended care-service sessions past their term (destroy).
    case sessions

    /// The order a plan is applied in: archives are written before anything is
    /// destroyed, and records and requests before sessions.
    public var order: Int {
        switch self {
        case .journal: 0
        case .coldArchives: 1
        case .careRecords: 2
        case .subjectRequests: 3
        case .sessions: 4
        }
    }

    public static func < (lhs: DataClass, rhs: DataClass) -> Bool { lhs.order < rhs.order }
}

/// One thing a plan would archive, purge, pseudonymise or destroy, with the rule
/// and the dates that make it due; or, for a held item, the holds that keep it.
public struct PlanItem: Sendable, Hashable, Codable {
    /// A stable key: `care-record/<patient id>`, `journal-month/2025-01`,
    /// `cold-archive/2019-01`, `subject-request/<number>`, `session/<token hash>`.
    public let key: String
    /// Its class.
    public let dataClass: DataClass
    /// What is done to it.
    public let action: RetentionPolicy.Action
    /// The rule, in words, with the policy setting it comes from.
    public let rule: String
    /// The dates the term was computed from (`last_episode`, `death`, `birthday`, `month_end`, `closed`, `ended` …).
    public let basis: [String: CivilDate]
    /// The first day it is due.
    public let dueOn: CivilDate
    /// The holds keeping it, for an item that is due but held (never applied).
    public let heldBy: [Int64]?

    /// An item.
    public init(key: String, dataClass: DataClass, action: RetentionPolicy.Action, rule: String, basis: [String: CivilDate], dueOn: CivilDate, heldBy: [Int64]? = nil) {
        self.key = key
        self.dataClass = dataClass
        self.action = action
        self.rule = rule
        self.basis = basis
        self.dueOn = dueOn
        self.heldBy = heldBy
    }

    /// The part of the key after the class: a patient id, a month, a token hash.
    public var target: String { String(key.split(separator: "/", maxSplits: 1).last ?? "") }

    enum CodingKeys: String, CodingKey {
        case key, action, rule, basis
        case dataClass = "class"
        case dueOn = "due_on"
        case heldBy = "held_by"
    }
}

/// Exactly what retention would do as of a day: the due items, in the order they
/// are applied, and the due items legal holds keep. Stored as canonical JSON whose
/// SHA-256 the DPO approves; any change to the stored text changes the digest.
public struct RetentionPlan: Sendable, Hashable, Codable {
    /// The document's format name.
    public static let formatName = "osmose-retention-plan"
    /// Days a plan may wait between its computation and the start of its run.
    public static let validityDays = 31

    /// How a plan may be used.
    public enum Kind: String, Sendable, Hashable, Codable {
        /// For today: the DPO approves it, then it is applied.
        case reviewed
        /// For a later day: shows next year's effects; never approved.
        case preview
        /// What the policy lets osmose-retentiond do without approval (journal months).
        case automatic
    }

    /// `osmose-retention-plan`.
    public var format = Self.formatName
    /// 1.
    public var version = 1
    /// How it may be used.
    public var kind: Kind
    /// The day the terms are compared with.
    public var asOf: CivilDate
    /// When it was computed (UTC, RFC 3339).
    public var computedAt: String
    /// SHA-256 of the retention policy file it was computed under.
    public var policySHA256: String
    /// The due items, in application order.
    public var items: [PlanItem]
    /// The due items that legal holds keep.
    public var held: [PlanItem]

    enum CodingKeys: String, CodingKey {
        case format, version, kind, items, held
        case asOf = "as_of"
        case computedAt = "computed_at"
        case policySHA256 = "policy_sha256"
    }

    /// A plan.
    public init(kind: Kind, asOf: CivilDate, computedAt: Date, policySHA256: String, items: [PlanItem], held: [PlanItem]) {
        self.kind = kind
        self.asOf = asOf
        self.computedAt = Timestamp.text(computedAt)
        self.policySHA256 = policySHA256
        self.items = items.sorted { ($0.dataClass, $0.key) < ($1.dataClass, $1.key) }
        self.held = held.sorted { ($0.dataClass, $0.key) < ($1.dataClass, $1.key) }
    }

    /// The canonical text: JSON with sorted keys, no insignificant space, dates as `YYYY-MM-DD`.
    public func canonicalText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Reads a stored plan's text.
    /// - Throws: ``RetentionError/Code/planModified`` when the text is not a plan.
    public static func parse(_ text: String) throws -> RetentionPlan {
        let decoder = JSONDecoder()
        do {
            let plan = try decoder.decode(RetentionPlan.self, from: Data(text.utf8))
            guard plan.format == formatName, plan.version == 1 else { throw RetentionError(.planModified, "not a version-1 \(formatName)") }
            return plan
        } catch let error as RetentionError {
            throw error
        } catch {
            throw RetentionError(.planModified, "the stored plan is not a readable plan document")
        }
    }

    /// The SHA-256 (hex) of a text.
    public static func digest(_ text: String) -> String { SHA256.hash(Array(text.utf8)).map { String(format: "%02x", $0) }.joined() }

    /// Counts of due items per class and action.
    public var counts: [String: Int] {
        Dictionary(grouping: items, by: { "\($0.dataClass.rawValue) \($0.action.rawValue)" }).mapValues(\.count)
    }
}
