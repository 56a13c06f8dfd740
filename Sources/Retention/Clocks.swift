public import Foundation
public import Settings

/// A legal hold as a clock sees it: placed on a day, released on a day or still
/// in force. Active on day D when placed on or before D and not released by D.
public struct HoldSpan: Hashable, Sendable, Codable {
    /// The hold's id (`osmosectl retention hold list`).
    public let id: Int64
    /// The day it was placed.
    public let placedOn: CivilDate
    /// The day it was released; nil while in force.
    public let releasedOn: CivilDate?

    /// A hold span.
    public init(id: Int64, placedOn: CivilDate, releasedOn: CivilDate?) {
        self.id = id
        self.placedOn = placedOn
        self.releasedOn = releasedOn
    }

    /// Whether the hold is in force on `day`.
    public func isActive(on day: CivilDate) -> Bool {
        placedOn <= day && (releasedOn.map { $0 > day } ?? true)
    }
}

/// When an item becomes due, why, and whether a hold keeps it.
public enum RetentionDecision: Hashable, Sendable {
    /// The term is after the day asked about.
    case notDue(term: CivilDate)
    /// Due on or before the day asked about: the action may be applied.
    case due(term: CivilDate)
    /// Due, but kept by the holds named.
    case held(term: CivilDate, holds: [Int64])
    /// Never due while things stay as they are (an open care episode).
    case never

    /// The term, if any.
    public var term: CivilDate? {
        switch self {
        case .notDue(let term), .due(let term), .held(let term, _): term
        case .never: nil
        }
    }

    /// Decides from a term, the day asked about and the holds naming the item.
    public static func deciding(term: CivilDate, on day: CivilDate, holds: [HoldSpan]) -> RetentionDecision {
        guard term <= day else { return .notDue(term: term) }
        let active = holds.filter { $0.isActive(on: day) }.map(\.id).sorted()
        return active.isEmpty ? .due(term: term) : .held(term: term, holds: active)
    }
}

/// One patient's care record clock (Code de la santé publique, art. R1112-7), as
/// a value computed from dates alone. Every period is counted in calendar years
/// from its starting day and expires at the end of the anniversary day (Code de
/// procédure civile, art. 641–642: 29 February counts to 28 February); the term,
/// the first day the record may be pseudonymised, is the day after.
///
/// - 20 years (`years_after_last_episode`) after the last care episode ended
///   (a patient who never had one: after registration); an open episode never expires;
/// - extended to the 28th birthday (`until_age`) when that comes later;
/// - but 10 years (`years_after_death`) after death when the patient died less
///   than 10 years (`death_within_years`) after the last episode, whatever the age.
public struct CareRecordClock: Hashable, Sendable {
    /// The years of each rule, from the policy.
    public let rules: RetentionPolicy.CareRecords

    /// A clock applying `rules`.
    public init(rules: RetentionPolicy.CareRecords) { self.rules = rules }

    /// What a patient's term is computed from.
    public struct History: Hashable, Sendable {
        /// The birth date.
        public var birthDate: CivilDate
        /// The day the patient was registered (the start when no episode ever ended).
        public var registeredOn: CivilDate
        /// The day the last closed care episode ended, if any closed.
        public var lastEpisodeEnd: CivilDate?
        /// Whether an episode is still open.
        public var hasOpenEpisode: Bool
        /// The date of death, if recorded.
        public var dateOfDeath: CivilDate?
        /// Holds naming the patient or one of its episodes.
        public var holds: [HoldSpan]

        /// A history.
        public init(
            birthDate: CivilDate, registeredOn: CivilDate, lastEpisodeEnd: CivilDate?, hasOpenEpisode: Bool = false, dateOfDeath: CivilDate? = nil,
            holds: [HoldSpan] = []
        ) {
            self.birthDate = birthDate
            self.registeredOn = registeredOn
            self.lastEpisodeEnd = lastEpisodeEnd
            self.hasOpenEpisode = hasOpenEpisode
            self.dateOfDeath = dateOfDeath
            self.holds = holds
        }
    }

    /// Which rule gives the term.
    public enum Rule: String, Hashable, Sendable, Codable {
        /// Years after the last care episode ended.
        case lastEpisode = "last-episode"
        /// Years after registration, for a patient with no closed episode.
        case registration
        /// Until the birthday of the minimum age.
        case untilAge = "until-age"
        /// Years after death, the patient having died within the window after the last episode.
        case afterDeath = "after-death"
        /// An episode is open: no term.
        case openEpisode = "open-episode"
    }

    /// A term and how it was reached.
    public struct Term: Hashable, Sendable {
        /// The rule that gives it.
        public let rule: Rule
        /// The last day the record is kept as it is (nil: no term).
        public let keptThrough: CivilDate?
        /// The first day it is due (the day after ``keptThrough``).
        public var dueOn: CivilDate? { keptThrough?.adding(days: 1) }
        /// The dates the term was computed from, by name (`last_episode`, `death`, `birthday` …).
        public let basis: [String: CivilDate]
    }

    /// The term of `history`.
    public func term(of history: History) -> Term {
        if history.hasOpenEpisode { return Term(rule: .openEpisode, keptThrough: nil, basis: [:]) }
        let (start, startRule, startName) =
            history.lastEpisodeEnd.map { ($0, Rule.lastEpisode, "last_episode") } ?? (history.registeredOn, .registration, "registered")
        if let death = history.dateOfDeath, death < start.adding(years: rules.deathWithinYears) {
            return Term(rule: .afterDeath, keptThrough: death.adding(years: rules.yearsAfterDeath), basis: [startName: start, "death": death])
        }
        let standard = start.adding(years: rules.yearsAfterLastEpisode)
        let birthday = history.birthDate.adding(years: rules.untilAge)
        var basis = [startName: start]
        if let death = history.dateOfDeath { basis["death"] = death }
        guard birthday > standard else { return Term(rule: startRule, keptThrough: standard, basis: basis) }
        basis["birthday"] = birthday
        return Term(rule: .untilAge, keptThrough: birthday, basis: basis)
    }

    /// Whether `history` is due on `day`, and what keeps it if it is held.
    public func decision(for history: History, on day: CivilDate) -> (RetentionDecision, Term) {
        let term = term(of: history)
        guard let due = term.dueOn else { return (.never, term) }
        return (RetentionDecision.deciding(term: due, on: day, holds: history.holds), term)
    }
}

/// The journal's monthly clock: a UTC month stays online `online_months` after it
/// ends, then is archived and purged; its archive is destroyed `archive_years`
/// after the month ends.
public struct JournalMonthClock: Hashable, Sendable {
    /// Months online after the month ends.
    public let onlineMonths: Int
    /// Years the archive is kept after the month ends.
    public let archiveYears: Int

    /// A clock with these terms.
    public init(onlineMonths: Int, archiveYears: Int) {
        self.onlineMonths = onlineMonths
        self.archiveYears = archiveYears
    }

    /// A clock with the policy's terms.
    public init(policy: RetentionPolicy) {
        self.init(onlineMonths: policy.journal.onlineMonths, archiveYears: policy.coldArchives.archiveYears)
    }

    /// The first day `month` may be archived and purged.
    public func archiveDue(_ month: CalendarMonth) -> CivilDate { month.end.adding(months: onlineMonths) }

    /// The first day `month`'s archive may be destroyed.
    public func destructionDue(_ month: CalendarMonth) -> CivilDate { month.end.adding(years: archiveYears) }

    /// Whether a hold on the journal period `from`…`through` (days, inclusive) names `month`.
    public static func period(from: CivilDate, through: CivilDate, covers month: CalendarMonth) -> Bool {
        from < month.end && through >= month.firstDay
    }
}

/// The sessions' clock: a session's row is removed `days_after_end` days after it
/// ended (logout, or expiry).
public struct SessionClock: Hashable, Sendable {
    /// Days after the end.
    public let daysAfterEnd: Int

    /// A clock with this term.
    public init(daysAfterEnd: Int) { self.daysAfterEnd = daysAfterEnd }

    /// The moment a session that ended at `end` becomes due.
    public func due(endedAt end: Date) -> Date { end.addingTimeInterval(Double(daysAfterEnd) * 86_400) }

    /// Sessions that ended before this moment are due at `now`.
    public func endedBefore(_ now: Date) -> Date { now.addingTimeInterval(-Double(daysAfterEnd) * 86_400) }
}
