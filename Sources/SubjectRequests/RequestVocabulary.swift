public import Foundation

/// What the data subject asks for (GDPR art. 15–21).
public enum RequestKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// Art. 15, and CSP L1111-7 for health information.
    case access
    /// Art. 16.
    case rectification
    /// Art. 18.
    case restriction
    /// Art. 17.
    case erasure
    /// Art. 21.
    case objection
    /// Art. 20.
    case portability

    /// The article of the GDPR that gives the right.
    public var article: String {
        switch self {
        case .access: "RGPD art. 15"
        case .rectification: "RGPD art. 16"
        case .restriction: "RGPD art. 18"
        case .erasure: "RGPD art. 17"
        case .objection: "RGPD art. 21"
        case .portability: "RGPD art. 20"
        }
    }
}

/// In what capacity the requester acts.
public enum RequesterCapacity: String, Sendable, Hashable, Codable, CaseIterable {
    /// The patient.
    case patient
    /// The holder of parental authority of a minor, or the guardian of a protected adult (CSP L1111-7, al. 1).
    case legalRepresentative = "legal-representative"
    /// An heir of a deceased patient (CSP L1110-4 V: the causes of death, defending their memory, asserting their rights).
    case heir
    /// A doctor the patient chose as intermediary (CSP L1111-7, al. 1).
    case chosenDoctor = "chosen-doctor"
    /// A member of staff, about their own account.
    case staffMember = "staff-member"
}

/// Whom a legal representative represents.
public enum Representation: String, Sendable, Hashable, Codable, CaseIterable {
    case minor
    case protectedAdult = "protected-adult"
}

/// How a request ended.
public enum RequestOutcome: String, Sendable, Hashable, Codable, CaseIterable {
    case granted
    case partiallyGranted = "partially-granted"
    case refused
    case withdrawn
    /// Nothing is held about the data subject.
    case noData = "no-data"
}

/// How a released pack reached the requester.
public enum DeliveryMethod: String, Sendable, Hashable, Codable, CaseIterable {
    /// Registered letter (the printed HTML, and the sealed file on a medium).
    case post
    /// Handed over on site.
    case hand
    /// A secure mail service (e.g. MSSanté to a chosen doctor).
    case secureMail = "secure-mail"
    /// Downloaded by the requester from a secure portal.
    case download
}

/// Why a passage was removed from an access pack.
public enum RedactionReason: String, Sendable, Hashable, Codable, CaseIterable {
    /// It concerns a third party (a relative named in a note): CSP L1111-7 excludes
    /// information about or from third parties not involved in the care.
    case thirdParty = "third-party"
    /// It concerns another patient.
    case otherPatient = "other-patient"
}

/// Whom a request is about.
public enum RequestSubject: Sendable, Hashable, Codable {
    /// A patient of the care records.
    case patient(UUID)
    /// A staff account (login name), for data outside the health record.
    case staff(UUID)
}
