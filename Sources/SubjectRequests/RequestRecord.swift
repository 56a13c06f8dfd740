public import Foundation

/// The identity check the DPO made: which documents were seen, by whom, when
/// (CSP R1111-1: the requester's identity, and their capacity, are checked).
public struct IdentityCheck: Sendable, Hashable, Codable {
    /// Who checked (the DPO or an agent of the records office).
    public var checkedBy: String
    /// When.
    public var checkedAt: Date
    /// What was seen (e.g. "carte d'identité n° …, livret de famille"): personal data, stored encrypted.
    public var documents: String?

    /// A check; `documents` nil when read without the master key.
    public init(checkedBy: String, checkedAt: Date, documents: String?) {
        self.checkedBy = checkedBy
        self.checkedAt = checkedAt
        self.documents = documents
    }
}

/// A request as the register holds it. Encrypted values are nil when read without the master key.
public struct RequestRecord: Sendable, Hashable, Codable {
    /// Its internal id (journal events and evidence steps name it).
    public var id: UUID
    /// Its number, as the DPO and the requester refer to it.
    public var number: Int64
    /// What is asked.
    public var kind: RequestKind
    /// The patient the request is about, once matched.
    public var patientID: UUID?
    /// The staff account the request is about (its login name), for a staff member's request.
    public var staffUsername: String?
    /// In what capacity the requester acts.
    public var capacity: RequesterCapacity
    /// For a legal representative: whom they represent.
    public var representation: Representation?
    /// The requester's name.
    public var requesterName: String?
    /// Where to answer them.
    public var requesterContact: String?
    /// When the request was received.
    public var receivedAt: Date
    /// The day it was received, in the controller's time zone.
    public var receivedOn: CivilDate
    /// Whether health information is asked for.
    public var healthInformation: Bool
    /// The day of the most recent health information held when the request was opened.
    public var latestInformationOn: CivilDate?
    /// The identity check, once made.
    public var identityCheck: IdentityCheck?
    /// The day the extension notice was sent.
    public var extensionNoticeOn: CivilDate?
    /// True when the DPO registered the request after its deadline, knowingly.
    public var lateAcknowledged: Bool
    /// `open` or `closed`.
    public var status: String
    /// How it ended, once closed.
    public var outcome: RequestOutcome?
    /// When it was closed.
    public var closedAt: Date?
    /// Its disposal at the end of its retention term (its personal data erased, the
    /// record and its evidence chain's structure kept), if it was disposed of.
    public var disposal: Disposal?
    /// When and by whom it was registered.
    public var openedAt: Date
    public var openedBy: String
    /// Its deadlines, each with its rule.
    public var deadlines: [Deadline]

    /// What the register keeps of a request's disposal, to show it was lawful.
    public struct Disposal: Sendable, Hashable, Codable {
        /// When its content was erased.
        public var at: Date
        /// The approved retention plan that disposed of it, and that plan's SHA-256 (hex).
        public var planID: Int64
        public var planSHA256: String
        /// Who approved the plan, and when.
        public var approvedBy: String
        public var approvedAt: Date
    }

    /// The last day it may be answered.
    public var dueOn: CivilDate? { RequestDeadlines.effectiveDue(deadlines) }
    /// The earliest moment it may be answered, if a floor applies.
    public var earliestAnswer: Date? { RequestDeadlines.earliestAnswer(deadlines) }
    /// Whether it is still open.
    public var isOpen: Bool { status == "open" }

    /// The facts its deadlines follow from.
    public var deadlineFacts: DeadlineFacts {
        DeadlineFacts(
            kind: kind, capacity: capacity, receivedAt: receivedAt, receivedOn: receivedOn, healthInformation: healthInformation,
            latestInformationOn: latestInformationOn, extensionNoticeOn: extensionNoticeOn)
    }
}

/// A line of the register's list.
public struct RequestSummary: Sendable, Hashable, Codable {
    public let number: Int64
    public let kind: RequestKind
    public let capacity: RequesterCapacity
    public let receivedOn: CivilDate
    public let status: String
    public let outcome: RequestOutcome?
    public let dueOn: CivilDate?
    /// Days left until the due day (negative when past); nil for a closed request.
    public let daysLeft: Int?
    public let identityChecked: Bool
    /// The patient, when the request is about one.
    public let patientID: UUID?
    /// Whether it was disposed of at the end of its retention term.
    public let disposed: Bool
}

/// How a request's subject is identified when it is registered.
public enum SubjectIdentification: Sendable, Hashable, Codable {
    /// A patient, by last name, first name and birth date (YYYY-MM-DD): the blind-index search.
    case patientName(lastName: String, firstName: String, birthDate: String)
    /// A patient, by INS.
    case patientINS(String)
    /// A patient, by the id the care records give them (found in an earlier request or a journal search).
    case patientID(UUID)
    /// A staff member's own account, by login name.
    case staff(username: String)
}

/// A request to register.
public struct NewRequest: Sendable, Hashable, Codable {
    public var kind: RequestKind
    public var subject: SubjectIdentification
    /// When several patients match `subject`, the one meant (it must be among them).
    public var chosenPatient: UUID?
    public var capacity: RequesterCapacity
    public var representation: Representation?
    public var requesterName: String
    public var requesterContact: String?
    public var receivedAt: Date
    /// Whether health information is asked for; by default, yes for a patient, no for staff.
    public var healthInformation: Bool?
    /// The identity check, if made on receipt.
    public var identityCheck: IdentityCheck?
    /// Register a request whose deadline is already past, knowingly (the delay is recorded).
    public var acknowledgeLate: Bool

    /// A request to register.
    public init(
        kind: RequestKind, subject: SubjectIdentification, chosenPatient: UUID? = nil, capacity: RequesterCapacity, representation: Representation? = nil,
        requesterName: String, requesterContact: String? = nil, receivedAt: Date, healthInformation: Bool? = nil, identityCheck: IdentityCheck? = nil,
        acknowledgeLate: Bool = false
    ) {
        self.kind = kind
        self.subject = subject
        self.chosenPatient = chosenPatient
        self.capacity = capacity
        self.representation = representation
        self.requesterName = requesterName
        self.requesterContact = requesterContact
        self.receivedAt = receivedAt
        self.healthInformation = healthInformation
        self.identityCheck = identityCheck
        self.acknowledgeLate = acknowledgeLate
    }
}
