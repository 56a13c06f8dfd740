public import Foundation

/// A calendar day (proleptic Gregorian), without time or time zone: what legal
/// deadlines are counted in. Arithmetic on days and months is exact and needs no
/// calendar object, so rules built on it are tested with fixed dates and no I/O.
public struct CivilDate: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// The year (1–9999).
    public let year: Int
    /// The month (1–12).
    public let month: Int
    /// The day of the month (1–28…31).
    public let day: Int

    /// The day `year-month-day`, or nil when it does not exist (30 February).
    public init?(year: Int, month: Int, day: Int) {
        guard (1...9999).contains(year), (1...12).contains(month), day >= 1, day <= Self.daysIn(month: month, year: year) else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    /// Parses `YYYY-MM-DD` strictly: four-digit year, two-digit month and day, a day that exists.
    /// - Throws: ``SubjectRequestError`` `.invalidDate` naming `what`.
    public init(parsing text: String, what: String = "date") throws {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard text.utf8.count == 10, parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2])
        else { throw SubjectRequestError(.invalidDate, "\(what) must be a date written YYYY-MM-DD (e.g. 2026-01-31)") }
        guard let date = CivilDate(year: year, month: month, day: day) else {
            throw SubjectRequestError(.invalidDate, "\(what): \(text) is not a day of the calendar")
        }
        self = date
    }

    /// Whether `year` has a 29 February.
    public static func isLeap(_ year: Int) -> Bool { (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 }

    /// The number of days of `month` in `year`.
    public static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 (negative before).
    public var daysSinceEpoch: Int {
        // Howard Hinnant's days_from_civil.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The day `days` days after 1970-01-01.
    public init(daysSinceEpoch days: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        self.month = month
        self.day = day
    }

    /// The day `count` days later (earlier when negative).
    public func adding(days count: Int) -> CivilDate { CivilDate(daysSinceEpoch: daysSinceEpoch + count) }

    /// The same day `count` months later; when that month is shorter, its last day
    /// (31 January + 1 month = 28 or 29 February), as Regulation 1182/71 art. 3(2)(c)
    /// counts a period in months.
    public func adding(months count: Int) -> CivilDate {
        let index = year * 12 + (month - 1) + count
        let (newYear, newMonth) = (index / 12, index % 12 + 1)
        return CivilDate(year: newYear, month: newMonth, day: min(day, Self.daysIn(month: newMonth, year: newYear)))!
    }

    /// The same day `count` years later (29 February → 28 February in a common year).
    public func adding(years count: Int) -> CivilDate { adding(months: 12 * count) }

    /// The number of days from `self` to `other` (positive when `other` is later).
    public func days(to other: CivilDate) -> Int { other.daysSinceEpoch - daysSinceEpoch }

    /// The calendar day `moment` falls on in `timeZone`.
    public static func on(_ moment: Date, in timeZone: TimeZone) -> CivilDate {
        let seconds = Int((moment.timeIntervalSince1970).rounded(.down)) + timeZone.secondsFromGMT(for: moment)
        return CivilDate(daysSinceEpoch: Int((Double(seconds) / 86400).rounded(.down)))
    }

    /// The first instant of the day after this one in `timeZone`: a deadline on this
    /// day is met by anything before it.
    public func endOfDay(in timeZone: TimeZone) -> Date {
        let next = adding(days: 1)
        let midnightUTC = Date(timeIntervalSince1970: TimeInterval(next.daysSinceEpoch) * 86400)
        // The zone's offset at local midnight, found from the offset near it (the
        // offset changes at 02:00 or 03:00 local, never at midnight, in Europe).
        let offset = timeZone.secondsFromGMT(for: midnightUTC.addingTimeInterval(-TimeInterval(timeZone.secondsFromGMT(for: midnightUTC))))
        return midnightUTC.addingTimeInterval(-TimeInterval(offset))
    }

    public static func < (lhs: CivilDate, rhs: CivilDate) -> Bool { (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day) }

    /// `YYYY-MM-DD`.
    public var description: String {
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }

    /// `D mois YYYY` in French, as letters to the requester write it.
    public var french: String {
        let months = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"]
        return "\(day == 1 ? "1er" : String(day)) \(months[month - 1]) \(year)"
    }

    public init(from decoder: any Decoder) throws {
        self = try CivilDate(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
