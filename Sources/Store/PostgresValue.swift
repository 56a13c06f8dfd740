public import Foundation

/// A value sent to PostgreSQL as a statement parameter: text in PostgreSQL's input
/// syntax, raw bytes (sent in binary format, for `bytea`), or NULL.
public enum PostgresValue: Hashable, Sendable {
    /// A value in PostgreSQL's text input form; the server casts it to the parameter's type.
    case text(String)
    /// Raw bytes for a `bytea` parameter, sent in binary format.
    case bytes([UInt8])
    /// SQL NULL.
    case null
}

/// A Swift type that can be sent as a statement parameter.
public protocol PostgresEncodable: Sendable {
    /// The value as PostgreSQL receives it.
    var postgresValue: PostgresValue { get }
}

extension PostgresValue: PostgresEncodable {
    public var postgresValue: PostgresValue { self }
}

extension String: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(self) }
}

extension Substring: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(String(self)) }
}

extension Int: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(String(self)) }
}

extension Int64: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(String(self)) }
}

extension Int32: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(String(self)) }
}

extension Bool: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(self ? "true" : "false") }
}

extension Double: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(String(self)) }
}

extension Array: PostgresEncodable where Element == UInt8 {
    public var postgresValue: PostgresValue { .bytes(self) }
}

extension UUID: PostgresEncodable {
    public var postgresValue: PostgresValue { .text(uuidString.lowercased()) }
}

extension Date: PostgresEncodable {
    /// A `timestamptz` literal in UTC with microsecond precision.
    public var postgresValue: PostgresValue { .text(PostgresTimestamp.format(self)) }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresValue: PostgresValue { self?.postgresValue ?? .null }
}

/// Conversions between `Date` and PostgreSQL's ISO `timestamptz` text in UTC. Each
/// connection sets `TimeZone = 'UTC'` and `DateStyle = 'ISO, YMD'`, so this is the
/// only form the server sends.
enum PostgresTimestamp {
    static func format(_ date: Date) -> String {
        let totalMicroseconds = (date.timeIntervalSince1970 * 1_000_000).rounded()
        var seconds = Int(floor(totalMicroseconds / 1_000_000))
        let microseconds = Int(totalMicroseconds - Double(seconds) * 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let micro = String(microseconds)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2)) "
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: 6 - micro.count) + micro + "+00"
    }

    /// Parses PostgreSQL's `YYYY-MM-DD HH:MM:SS[.ffffff]+00` output.
    static func parse(_ text: String) -> Date? { TimestampText.parse(text, separator: UInt8(ascii: " ")) }
}

/// One parser for the two timestamp texts the suite reads: PostgreSQL's output
/// (`2026-11-22 10:04:05.123456+00`) and ISO 8601 / RFC 3339 in JSON
/// (`2026-11-22T10:04:05.123Z`, `…+01:00`).
public enum TimestampText {
    /// Parses `YYYY-MM-DD<separator>HH:MM:SS[.fraction](Z|±HH|±HH:MM)`, or nil.
    public static func parse(_ text: String, separator: UInt8) -> Date? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= bytes.count else { return nil }
            var value = 0
            for index in range {
                guard (48...57).contains(bytes[index]) else { return nil }
                value = value * 10 + Int(bytes[index] - 48)
            }
            return value
        }
        guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == separator,
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19), (1...12).contains(month), (1...31).contains(day), hour < 24,
            minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction = 0.0
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 0.1
            let start = index
            while index < bytes.count, (48...57).contains(bytes[index]) {
                fraction += Double(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        guard index < bytes.count else { return nil }
        var offset = 0
        switch bytes[index] {
        case UInt8(ascii: "Z"):
            guard index + 1 == bytes.count else { return nil }
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard let hours = number((index + 1)..<(index + 3)), hours < 24 else { return nil }
            var minutes = 0
            if bytes.count == index + 6, bytes[index + 3] == UInt8(ascii: ":"), let value = number((index + 4)..<(index + 6)), value < 60 {
                minutes = value
            } else if bytes.count != index + 3 {
                return nil
            }
            offset = (bytes[index] == UInt8(ascii: "+") ? 1 : -1) * (hours * 3600 + minutes * 60)
        default:
            return nil
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let epoch = timegm(&parts)
        let microseconds = (fraction * 1_000_000).rounded()
        return Date(timeIntervalSince1970: Double(epoch - offset) + microseconds / 1_000_000)
    }
}
