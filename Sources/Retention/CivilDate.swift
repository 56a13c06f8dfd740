public import Foundation

/// A calendar day (proleptic Gregorian), without time or zone: what retention
/// terms are counted in. Periods in years or months follow the Code de procédure
/// civile, art. 641: a period ends on the day of the last month that bears the
/// same number as the starting day, or, when that month has no such day (29
/// February, 31 April), on its last day.
public struct CivilDate: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    /// The year (four digits).
    public let year: Int
    /// The month, 1 to 12.
    public let month: Int
    /// The day of the month, 1 to its length.
    public let day: Int

    /// A valid date.
    /// - Throws: ``RetentionError/Code/invalidArgument`` when the day does not exist.
    public init(year: Int, month: Int, day: Int) throws {
        guard (1...9999).contains(year), (1...12).contains(month), (1...Self.length(ofMonth: month, year: year)).contains(day) else {
            throw RetentionError(.invalidArgument, "\(year)-\(month)-\(day) is not a calendar date")
        }
        self.year = year
        self.month = month
        self.day = day
    }

    private init(unchecked year: Int, _ month: Int, _ day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// Parses `YYYY-MM-DD`.
    /// - Throws: ``RetentionError/Code/invalidArgument`` naming the text.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
            let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2])
        else { throw RetentionError(.invalidArgument, "\(text.prefix(40)) is not a date written YYYY-MM-DD") }
        try self.init(year: year, month: month, day: day)
    }

    /// The calendar day `date` falls on in `timeZone`.
    public init(_ date: Date, in timeZone: TimeZone) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        self.init(unchecked: parts.year!, parts.month!, parts.day!)
    }

    /// The day `date` falls on in UTC.
    public init(utc date: Date) { self.init(date, in: TimeZone(identifier: "UTC")!) }

    /// `YYYY-MM-DD`.
    public var description: String { String(format: "%04d-%02d-%02d", year, month, day) }

    /// The number of days in `month` of `year`.
    public static func length(ofMonth month: Int, year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Whether `year` has a 29 February.
    public static func isLeap(_ year: Int) -> Bool { (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 }

    /// This date `months` calendar months later (earlier when negative), on the
    /// same day number or, lacking it, the month's last day (CPC art. 641).
    public func adding(months: Int) -> CivilDate {
        let index = year * 12 + (month - 1) + months
        let (newYear, newMonth) = (index / 12, index % 12 + 1)
        return CivilDate(unchecked: newYear, newMonth, min(day, Self.length(ofMonth: newMonth, year: newYear)))
    }

    /// This date `years` years later: 29 February gives 28 February in a common year.
    public func adding(years: Int) -> CivilDate { adding(months: years * 12) }

    /// The day after (or `days` days after; before when negative).
    public func adding(days: Int) -> CivilDate { CivilDate(dayNumber: dayNumber + days) }

    /// Days since 1970-01-01 (negative before).
    public var dayNumber: Int {
        // Howard Hinnant's days_from_civil.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The date `dayNumber` days after 1970-01-01.
    public init(dayNumber: Int) {
        // Howard Hinnant's civil_from_days.
        let z = dayNumber + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shifted = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shifted + 2) / 5 + 1
        let month = shifted < 10 ? shifted + 3 : shifted - 9
        self.init(unchecked: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Midnight UTC at the start of this day.
    public var startUTC: Date { Date(timeIntervalSince1970: Double(dayNumber) * 86_400) }

    public static func < (lhs: CivilDate, rhs: CivilDate) -> Bool { lhs.dayNumber < rhs.dayNumber }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// A UTC calendar month: the journal's partitions and archives are monthly.
public struct CalendarMonth: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    /// The year.
    public let year: Int
    /// The month, 1 to 12.
    public let month: Int

    /// A month.
    /// - Throws: ``RetentionError/Code/invalidArgument`` out of range.
    public init(year: Int, month: Int) throws {
        guard (1...9999).contains(year), (1...12).contains(month) else { throw RetentionError(.invalidArgument, "\(year)-\(month) is not a month") }
        self.year = year
        self.month = month
    }

    /// The month holding `date`.
    public init(containing date: CivilDate) {
        year = date.year
        month = date.month
    }

    /// Parses `YYYY-MM`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 4, parts[1].count == 2, let year = Int(parts[0]), let month = Int(parts[1]) else {
            throw RetentionError(.invalidArgument, "\(text.prefix(40)) is not a month written YYYY-MM")
        }
        try self.init(year: year, month: month)
    }

    /// Its first day.
    public var firstDay: CivilDate { try! CivilDate(year: year, month: month, day: 1) }
    /// The first day of the next month: where this month ends (exclusive).
    public var end: CivilDate { firstDay.adding(months: 1) }
    /// `YYYY-MM`.
    public var description: String { String(format: "%04d-%02d", year, month) }

    public static func < (lhs: CalendarMonth, rhs: CalendarMonth) -> Bool { (lhs.year, lhs.month) < (rhs.year, rhs.month) }

    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
