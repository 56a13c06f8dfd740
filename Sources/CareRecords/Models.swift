public import Foundation

/// A user's role.
public enum Role: String, Codable, Sendable, CaseIterable {
    /// A caregiver of a team.
    case agent
    /// A team's manager.
    case manager
    /// Manages accounts; reads no care content.
    case admin
}

/// The authenticated user behind a request.
public struct Principal: Sendable, Hashable {
    public let userID: UUID
    public let username: String
    public let role: Role
    public let teamID: UUID?
    public let teamCode: String?

    public init(userID: UUID, username: String, role: Role, teamID: UUID?, teamCode: String?) {
        self.userID = userID
        self.username = username
        self.role = role
        self.teamID = teamID
        self.teamCode = teamCode
    }
}

/// A value a JSON body may contain, with the fields it accepts (snake_case), so
/// that an unknown field is refused rather than silently ignored.
public protocol StrictInput: Decodable, Sendable {
    /// The fields the body's object accepts.
    static var fields: Set<String> { get }
    /// For a field holding an object or a list of objects, the fields those accept.
    static var nestedFields: [String: Set<String>] { get }
}

extension StrictInput {
    /// No nested objects.
    public static var nestedFields: [String: Set<String>] { [:] }
}

public enum Sex: String, Codable, Sendable { case female, male, other, unknown }
public enum ArrivalMode: String, Codable, Sendable {
    case ambulance, smur, firefighters, police, walkIn = "walk-in", transfer, other
}
public enum BoxStatus: String, Codable, Sendable { case requested, assigned, notNeeded = "not-needed" }
public enum RequestStatus: String, Codable, Sendable {
    case notRequested = "not-requested", requested, inProgress = "in-progress", done
}
public enum PsychiatricCare: String, Codable, Sendable { case inProgress = "in-progress", interrupted, finished }
public enum TransmissionCategory: String, Codable, Sendable { case observation, request, handover, alert }

// MARK: Patients

public struct PatientInput: StrictInput {
    public static let fields: Set<String> = ["last_name", "first_name", "birth_date", "sex", "ins"]
    public var lastName: String
    public var firstName: String
    public var birthDate: String
    public var sex: Sex
    public var ins: String?
}

public struct PatientPatch: StrictInput {
    public static let fields: Set<String> = ["last_name", "first_name", "birth_date", "sex", "ins"]
    public var lastName: String?
    public var firstName: String?
    public var birthDate: String?
    public var sex: Sex?
    public var ins: String?
}

public struct PatientView: Codable, Sendable, Hashable {
    public var id: UUID
    public var version: Int
    public var lastName: String
    public var firstName: String
    public var birthDate: String
    public var sex: Sex
    public var ins: String?
    public var createdAt: Date
    public var updatedAt: Date
}

// MARK: Episodes

public struct EpisodeInput: StrictInput {
    public static let fields: Set<String> = [
        "patient_id", "team", "arrival_at", "arrival_mode", "reason", "location", "box_number", "worrying", "accompanied",
        "box_status", "imaging_status", "imaging_note", "lab_status", "lab_note", "psychiatric_care", "activity_status",
    ]
    public var patientId: UUID
    public var team: String?
    public var arrivalAt: Date?
    public var arrivalMode: ArrivalMode
    public var reason: String
    public var location: String?
    public var boxNumber: String?
    public var worrying: Bool?
    public var accompanied: Bool?
    public var boxStatus: BoxStatus?
    public var imagingStatus: RequestStatus?
    public var imagingNote: String?
    public var labStatus: RequestStatus?
    public var labNote: String?
    public var psychiatricCare: PsychiatricCare?
    public var activityStatus: String?
}

public struct EpisodePatch: StrictInput {
    public static let fields: Set<String> = [
        "reason", "location", "box_number", "worrying", "accompanied", "box_status", "imaging_status", "imaging_note",
        "lab_status", "lab_note", "psychiatric_care", "activity_status",
    ]
    public var reason: String?
    public var location: String?
    public var boxNumber: String?
    public var worrying: Bool?
    public var accompanied: Bool?
    public var boxStatus: BoxStatus?
    public var imagingStatus: RequestStatus?
    public var imagingNote: String?
    public var labStatus: RequestStatus?
    public var labNote: String?
    public var psychiatricCare: PsychiatricCare?
    public var activityStatus: String?
}

public struct EpisodeView: Codable, Sendable, Hashable {
    public var id: UUID
    public var version: Int
    public var patientId: UUID
    public var team: String
    public var sharedWith: [String]
    public var arrivalAt: Date
    public var arrivalMode: ArrivalMode
    public var reason: String
    public var location: String?
    public var boxNumber: String?
    public var worrying: Bool
    public var accompanied: Bool
    public var boxStatus: BoxStatus
    public var imagingStatus: RequestStatus
    public var imagingNote: String?
    public var labStatus: RequestStatus
    public var labNote: String?
    public var psychiatricCare: PsychiatricCare?
    public var activityStatus: String?
    public var status: String
    public var closedAt: Date?
    public var timeInCareSeconds: Int
    public var updatedAt: Date
}

// MARK: Transmissions

public struct ChecklistItem: Codable, Sendable, Hashable {
    /// The fields an item accepts.
    public static let fields: Set<String> = ["label", "done"]
    public var label: String
    public var done: Bool
}

public struct TransmissionInput: StrictInput {
    public static let fields: Set<String> = ["category", "body", "addressed_team", "checklist"]
    public static let nestedFields: [String: Set<String>] = ["checklist": ChecklistItem.fields]
    public var category: TransmissionCategory?
    public var body: String
    public var addressedTeam: String?
    public var checklist: [ChecklistItem]?
}

public struct TransmissionView: Codable, Sendable, Hashable {
    public var id: UUID
    public var version: Int
    public var episodeId: UUID
    public var author: String
    public var authorTeam: String
    public var addressedTeam: String?
    public var category: TransmissionCategory
    public var body: String
    public var checklist: [ChecklistItem]
    public var writtenAt: Date
    public var retractedAt: Date?
}

// MARK: History, users, sessions

public struct VersionView: Codable, Sendable {
    public var version: Int
    public var changedAt: Date
    public var changedBy: String
    public var changedFields: [String]
    public var state: [String: JSONValue]
}

public struct UserView: Codable, Sendable, Hashable {
    public var id: UUID
    public var username: String
    public var displayName: String
    public var role: Role
    public var team: String?
    public var disabled: Bool
    public var locked: Bool
}

public struct LoginInput: StrictInput {
    public static let fields: Set<String> = ["username", "password"]
    public var username: String
    public var password: String
}

public struct SessionView: Codable, Sendable {
    public var token: String
    public var expiresAt: Date
    public var idleTimeoutSeconds: Int
    public var username: String
    public var role: Role
    public var team: String?
}

/// The follow-up of an episode, as exported.
public struct EpisodeExport: Codable, Sendable {
    public var exportedAt: Date
    public var exportedBy: String
    public var patient: PatientView
    public var episode: EpisodeView
    public var transmissions: [TransmissionView]
}

/// A JSON value, for history snapshots whose shape depends on the record type.
public enum JSONValue: Codable, Sendable, Hashable {
    case string(String), number(Double), bool(Bool), array([JSONValue]), object([String: JSONValue]), null

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }
}
