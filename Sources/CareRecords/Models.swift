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

/// A patient as the API shows it. Once pseudonymised (past the retention term),
/// names, birth date, INS and date of death are gone: ``pseudonym`` stands for
/// the patient, ``birthYear`` and ``deathYear`` for the dates.
public struct PatientView: Codable, Sendable, Hashable {
    public var id: UUID
    public var version: Int
    /// Nil once pseudonymised.
    public var lastName: String?
    /// Nil once pseudonymised.
    public var firstName: String?
    /// `YYYY-MM-DD`; nil once pseudonymised.
    public var birthDate: String?
    public var sex: Sex
    public var ins: String?
    /// `YYYY-MM-DD`, when recorded (by a manager or the DPO); nil once pseudonymised.
    public var dateOfDeath: String?
    public var createdAt: Date
    public var updatedAt: Date
    /// When the record was pseudonymised; nil while identified.
    public var pseudonymisedAt: Date?
    /// The keyed pseudonym that replaced the identifiers.
    public var pseudonym: String?
    /// The birth year, kept after pseudonymisation.
    public var birthYear: Int?
    /// The year of death, kept after pseudonymisation.
    public var deathYear: Int?
}

/// A date of death to record, or nil to clear one recorded in error.
public struct DateOfDeathInput: StrictInput {
    public static let fields: Set<String> = ["date_of_death"]
    /// `YYYY-MM-DD`, or null.
    public var dateOfDeath: String?

    enum CodingKeys: String, CodingKey { case dateOfDeath }

    /// Requires the field, null included: an empty body clears nothing by accident.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard container.contains(.dateOfDeath) else {
            throw DecodingError.keyNotFound(CodingKeys.dateOfDeath, .init(codingPath: [], debugDescription: "date_of_death is required (null clears it)"))
        }
        dateOfDeath = try container.decodeIfPresent(String.self, forKey: .dateOfDeath)
    }
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
    /// Nil once pseudonymised.
    public var reason: String?
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
    /// When the episode's free text was destroyed with its patient's pseudonymisation.
    public var pseudonymisedAt: Date?
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
    /// Nil once pseudonymised.
    public var body: String?
    public var checklist: [ChecklistItem]
    public var writtenAt: Date
    public var retractedAt: Date?
    /// When the text was destroyed with the patient's pseudonymisation.
    public var pseudonymisedAt: Date?
}

// MARK: History, users, sessions

public struct VersionView: Codable, Sendable {
    public var version: Int
    public var changedAt: Date
    /// The care user's login, or the operator (the DPO) who made the change through osmosectl.
    public var changedBy: String
    public var changedFields: [String]
    /// The state after the change; empty once erased by pseudonymisation.
    public var state: [String: JSONValue]
    /// When the state was erased by pseudonymisation.
    public var erasedAt: Date?
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
