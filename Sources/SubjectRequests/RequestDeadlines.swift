public import Foundation

/// A rule of law that sets a deadline (or a floor) on answering a request.
public enum DeadlineRule: String, Sendable, Hashable, Codable, CaseIterable {
    /// GDPR art. 12(3): without undue delay and at the latest within one month of receipt.
    case gdprOneMonth = "gdpr-one-month"
    /// GDPR art. 12(3): extended by two further months, the data subject informed of the
    /// extension, with its reasons, within the first month.
    case gdprExtended = "gdpr-extended"
    /// CSP L1111-7: health information is communicated no sooner than after 48 hours of reflection.
    case cspReflection = "csp-reflection"
    /// CSP L1111-7 and R1111-1: at the latest within eight days of the request.
    case cspEightDays = "csp-eight-days"
    /// CSP L1111-7: two months when the health information is more than five years old.
    case cspTwoMonths = "csp-two-months"

    /// The text the register, the evidence file and letters cite.
    public var citation: String {
        switch self {
        case .gdprOneMonth:
            "RGPD art. 12(3) : réponse dans un délai d'un mois à compter de la réception de la demande"
        case .gdprExtended:
            "RGPD art. 12(3) : délai prolongé de deux mois, la personne informée de la prolongation et de ses motifs dans le mois suivant la réception"
        case .cspReflection:
            "CSP art. L1111-7 : communication au plus tôt après un délai de réflexion de quarante-huit heures"
        case .cspEightDays:
            "CSP art. L1111-7 et R1111-1 : communication au plus tard dans les huit jours suivant la demande"
        case .cspTwoMonths:
            "CSP art. L1111-7 : délai porté à deux mois lorsque les informations médicales datent de plus de cinq ans"
        }
    }
}

/// One deadline of a request, with the rule that gave it: either a floor (the
/// earliest moment an answer may be given) or a due day (the last day it may be given).
public struct Deadline: Sendable, Hashable, Codable {
    /// The rule.
    public let rule: DeadlineRule
    /// The earliest moment (floors only).
    public let earliest: Date?
    /// The last day, in the controller's time zone (due dates only).
    public let dueOn: CivilDate?
    /// False once superseded (the one-month deadline after an extension).
    public let inForce: Bool

    /// A deadline.
    public init(rule: DeadlineRule, earliest: Date? = nil, dueOn: CivilDate? = nil, inForce: Bool = true) {
        self.rule = rule
        self.earliest = earliest
        self.dueOn = dueOn
        self.inForce = inForce
    }
}

/// The facts the deadlines of a request follow from.
public struct DeadlineFacts: Sendable, Hashable {
    /// What is asked.
    public var kind: RequestKind
    /// Who asks.
    public var capacity: RequesterCapacity
    /// When the request was received.
    public var receivedAt: Date
    /// The day it was received, in the controller's time zone.
    public var receivedOn: CivilDate
    /// Whether it asks for health information (CSP L1111-7 then applies to an access).
    public var healthInformation: Bool
    /// The day of the most recent health information held, if known.
    public var latestInformationOn: CivilDate?
    /// The day the reasoned extension notice was sent, if one was.
    public var extensionNoticeOn: CivilDate?

    /// The facts of a request.
    public init(
        kind: RequestKind, capacity: RequesterCapacity, receivedAt: Date, receivedOn: CivilDate, healthInformation: Bool,
        latestInformationOn: CivilDate? = nil, extensionNoticeOn: CivilDate? = nil
    ) {
        self.kind = kind
        self.capacity = capacity
        self.receivedAt = receivedAt
        self.receivedOn = receivedOn
        self.healthInformation = healthInformation
        self.latestInformationOn = latestInformationOn
        self.extensionNoticeOn = extensionNoticeOn
    }
}

/// Where a request stands against its deadline on a given day.
public enum DeadlineStanding: Sendable, Hashable {
    /// Due in more than the warning period: `daysLeft` days remain.
    case onTime(daysLeft: Int)
    /// Due within the warning period (0 = today is the last day).
    case nearing(daysLeft: Int)
    /// The last day was `daysLate` days ago.
    case past(daysLate: Int)
}

/// The deadlines the law sets on a request: a value type over fixed facts, so
/// every rule and boundary is tested with fixed dates and no I/O.
///
/// - GDPR art. 12(3): one month from receipt, counted as Regulation 1182/71 counts
///   months (31 January → the last day of February); extendable by two further
///   months with a reasoned notice sent within the first month.
/// - CSP L1111-7, for an access to health information by the patient, their legal
///   representative, an heir or their chosen doctor: no sooner than 48 hours after
///   receipt, at the latest 8 days after it, or 2 months when the information is
///   more than five years old. The rule is read conservatively: two months only when
///   the most recent information held is more than five years old on the day of
///   receipt; any newer information keeps the eight days.
/// - The effective due day is the earliest due day in force.
///
/// Weekends and public holidays never move a deadline here (1182/71 would move a
/// deadline falling on one to the next working day): the earlier day is always lawful.
public enum RequestDeadlines {
    /// The deadlines of a request with `facts`, the floor first.
    public static func deadlines(for facts: DeadlineFacts) -> [Deadline] {
        var deadlines: [Deadline] = []
        if cspApplies(facts) {
            deadlines.append(Deadline(rule: .cspReflection, earliest: facts.receivedAt.addingTimeInterval(48 * 3600)))
            if informationIsMoreThanFiveYearsOld(facts) {
                deadlines.append(Deadline(rule: .cspTwoMonths, dueOn: facts.receivedOn.adding(months: 2)))
            } else {
                deadlines.append(Deadline(rule: .cspEightDays, dueOn: facts.receivedOn.adding(days: 8)))
            }
        }
        let extended = facts.extensionNoticeOn != nil
        deadlines.append(Deadline(rule: .gdprOneMonth, dueOn: firstMonthEnds(facts), inForce: !extended))
        if extended { deadlines.append(Deadline(rule: .gdprExtended, dueOn: facts.receivedOn.adding(months: 3))) }
        return deadlines
    }

    /// Whether CSP L1111-7 governs the request: an access to health information by
    /// someone the article (or L1110-4 V for heirs) names.
    public static func cspApplies(_ facts: DeadlineFacts) -> Bool {
        facts.kind == .access && facts.healthInformation && facts.capacity != .staffMember
    }

    /// Whether the most recent health information is more than five years old on the day of receipt.
    public static func informationIsMoreThanFiveYearsOld(_ facts: DeadlineFacts) -> Bool {
        guard let latest = facts.latestInformationOn else { return false }
        return latest < facts.receivedOn.adding(years: -5)
    }

    /// The last day of the first month after receipt: the one-month deadline, and
    /// the last day an extension notice may be sent.
    public static func firstMonthEnds(_ facts: DeadlineFacts) -> CivilDate { facts.receivedOn.adding(months: 1) }

    /// Checks that an extension notice sent on `notice` is lawful.
    /// - Throws: ``SubjectRequestError`` `.extensionTooLate` after the first month,
    ///   `.invalidDate` before receipt, `.notReady` when an extension was already recorded.
    public static func checkExtension(notice: CivilDate, facts: DeadlineFacts) throws {
        guard facts.extensionNoticeOn == nil else {
            throw SubjectRequestError(.notReady, "the deadline was already extended (notice of \(facts.extensionNoticeOn!)): GDPR art. 12(3) allows one extension of two months")
        }
        guard notice >= facts.receivedOn else {
            throw SubjectRequestError(.invalidDate, "the extension notice (\(notice)) cannot precede the request's receipt (\(facts.receivedOn))")
        }
        let limit = firstMonthEnds(facts)
        guard notice <= limit else {
            throw SubjectRequestError(
                .extensionTooLate,
                "an extension must be notified within the first month (by \(limit)); a notice on \(notice) is too late (GDPR art. 12(3))")
        }
    }

    /// The last day the request may be answered: the earliest due day in force.
    public static func effectiveDue(_ deadlines: [Deadline]) -> CivilDate? {
        deadlines.filter(\.inForce).compactMap(\.dueOn).min()
    }

    /// The earliest moment an answer may be given, if a floor applies.
    public static func earliestAnswer(_ deadlines: [Deadline]) -> Date? {
        deadlines.filter(\.inForce).compactMap(\.earliest).max()
    }

    /// Where a request due on `due` stands on `today`, warning `warnDays` days ahead.
    public static func standing(due: CivilDate, today: CivilDate, warnDays: Int) -> DeadlineStanding {
        let left = today.days(to: due)
        if left < 0 { return .past(daysLate: -left) }
        if left <= warnDays { return .nearing(daysLeft: left) }
        return .onTime(daysLeft: left)
    }
}
