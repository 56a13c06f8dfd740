import Foundation

/// One UTC calendar month of the journal: the entries whose `sequenced_at` falls in
/// it form one partition (`journal.entries_YYYY_MM`), archived and purged as a whole.
public struct JournalMonth: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// The year (1970 or later).
    public let year: Int
    /// The month, 1…12.
    public let month: Int

    /// A month.
    /// - Throws: ``JournalArchiveError`` `.invalidArgument` outside 1970-01…9999-12.
    public init(year: Int, month: Int) throws {
        guard (1970...9999).contains(year), (1...12).contains(month) else {
            throw JournalArchiveError(.invalidArgument, "\(year)-\(month) is not a month between 1970-01 and 9999-12")
        }
        self.year = year
        self.month = month
    }

    /// Parses `YYYY-MM` (e.g. `2026-01`).
    /// - Throws: ``JournalArchiveError`` `.invalidArgument` naming the text.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 4, parts[1].count == 2, let year = Int(parts[0]), let month = Int(parts[1]),
            parts.allSatisfy({ $0.allSatisfy(\.isASCII) })
        else { throw JournalArchiveError(.invalidArgument, "\(text.prefix(40)) is not a month: write YYYY-MM, e.g. 2026-01") }
        try self.init(year: year, month: month)
    }

    /// The month holding `microseconds` since the Unix epoch (UTC).
    public init(containing microseconds: Int64) {
        var time = time_t(microseconds >= 0 ? microseconds / 1_000_000 : (microseconds - 999_999) / 1_000_000)
        var parts = tm()
        gmtime_r(&time, &parts)
        year = Int(parts.tm_year) + 1900
        month = Int(parts.tm_mon) + 1
    }

    /// `YYYY-MM`.
    public var description: String { String(format: "%04d-%02d", year, month) }

    /// The month's first day, `YYYY-MM-01` (how the database names it).
    public var firstDay: String { description + "-01" }

    /// The partition holding its entries.
    public var partitionName: String { String(format: "entries_%04d_%02d", year, month) }

    /// The next month.
    public var next: JournalMonth { month == 12 ? JournalMonth(unchecked: year + 1, 1) : JournalMonth(unchecked: year, month + 1) }

    /// Its first moment, microseconds since the Unix epoch (UTC).
    public var start: Int64 { Self.microseconds(year: year, month: month) }

    /// The first moment of the next month: the month is `start ..< end`.
    public var end: Int64 { next.start }

    /// The same month `years` later, its first moment: when an archive kept `years`
    /// years after the month's end expires.
    public func end(plusYears years: Int) -> Int64 {
        let after = next
        return Self.microseconds(year: after.year + years, month: after.month)
    }

    public static func < (lhs: JournalMonth, rhs: JournalMonth) -> Bool { (lhs.year, lhs.month) < (rhs.year, rhs.month) }

    /// Decodes `YYYY-MM`.
    public init(from decoder: any Decoder) throws {
        try self.init(parsing: try decoder.singleValueContainer().decode(String.self))
    }

    /// Encodes `YYYY-MM`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    private init(unchecked year: Int, _ month: Int) {
        self.year = year
        self.month = month
    }

    private static func microseconds(year: Int, month: Int) -> Int64 {
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = 1
        return Int64(timegm(&parts)) * 1_000_000
    }
}
