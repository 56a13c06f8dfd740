public import Foundation
import Glibc
import Journal
import Store

/// JSON coding as the API speaks it: snake_case keys, ISO 8601 timestamps with
/// fractional seconds, sorted keys for stable output.
public enum CareJSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(timestamp(date))
        }
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseTimestamp(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an ISO 8601 timestamp")
            }
            return date
        }
        return decoder
    }

    /// `2026-11-22T10:04:05.123Z`: UTC, milliseconds. Formatted directly, since
    /// creating an `ISO8601DateFormatter` per value cost a third of the service's
    /// CPU (see docs/benchmarks.md).
    public static func timestamp(_ date: Date) -> String {
        let milliseconds = (date.timeIntervalSince1970 * 1000).rounded(.down)
        var seconds = time_t((milliseconds / 1000).rounded(.down))
        let fraction = Int(milliseconds - Double(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var text = ""
        text.reserveCapacity(24)
        func append(_ value: Int32, _ width: Int) {
            let digits = String(value)
            if digits.count < width { text += String(repeating: "0", count: width - digits.count) }
            text += digits
        }
        append(parts.tm_year + 1900, 4); text += "-"; append(parts.tm_mon + 1, 2); text += "-"; append(parts.tm_mday, 2)
        text += "T"; append(parts.tm_hour, 2); text += ":"; append(parts.tm_min, 2); text += ":"; append(parts.tm_sec, 2)
        text += "."; append(Int32(fraction), 3); text += "Z"
        return text
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    static func parseTimestamp(_ text: String) -> Date? { TimestampText.parse(text, separator: UInt8(ascii: "T")) }

    /// Decodes `body` as `Input`, refusing what is not strict JSON (a field given
    /// twice, a byte-order mark, a NUL: ``Journal/StrictJSON``), unknown fields (in
    /// nested objects too), missing fields and values of the wrong type, with an
    /// error naming the field.
    public static func decode<Input: StrictInput>(_ type: Input.Type, from body: [UInt8]) throws -> Input {
        do throws(StrictJSON.Problem) {
            try StrictJSON.check(body)
        } catch .duplicateField(let path) {
            throw CareError(.duplicateField, "field \(path) is given more than once")
        } catch .nul(let path) {
            throw CareError(.invalidField, "field \(path) contains a NUL character")
        } catch {
            throw CareError(.malformedJSON, "the request body is not valid JSON: \(error)")
        }
        let data = Data(body)
        guard let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) else {
            throw CareError(.malformedJSON, "the request body is not valid JSON")
        }
        guard let dictionary = object as? [String: Any] else { throw CareError(.malformedJSON, "the request body must be a JSON object") }
        try refuseUnknownFields(dictionary, accepted: Input.fields, at: "")
        for (field, accepted) in Input.nestedFields {
            switch dictionary[field] {
            case let items as [Any]:
                for (index, item) in items.enumerated() {
                    guard let object = item as? [String: Any] else { throw CareError(.invalidField, "field \(field).\(index) must be an object") }
                    try refuseUnknownFields(object, accepted: accepted, at: "\(field).\(index).")
                }
            case let object as [String: Any]:
                try refuseUnknownFields(object, accepted: accepted, at: "\(field).")
            default:
                continue
            }
        }
        do {
            return try decoder().decode(Input.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw CareError(.missingField, "field \(snake(key.stringValue)) is required")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw CareError(.invalidField, "field \(path(context)) has the wrong type")
        } catch let DecodingError.dataCorrupted(context) {
            throw CareError(.invalidField, "field \(path(context)) has an invalid value")
        } catch {
            throw CareError(.malformedJSON, "the request body could not be read")
        }
    }

    private static func refuseUnknownFields(_ object: [String: Any], accepted: Set<String>, at prefix: String) throws {
        guard let unknown = object.keys.sorted().first(where: { !accepted.contains($0) }) else { return }
        let shown = JournalText.bounded(unknown, to: 40)
        throw CareError(.unknownField, "unknown field \"\(prefix)\(shown)\"; accepted: \(accepted.sorted().joined(separator: ", "))")
    }

    private static func path(_ context: DecodingError.Context) -> String {
        let keys = context.codingPath.map { $0.intValue.map(String.init) ?? snake($0.stringValue) }
        return keys.isEmpty ? "(body)" : keys.joined(separator: ".")
    }

    private static func snake(_ camel: String) -> String {
        var result = ""
        for character in camel {
            if character.isUppercase { result += "_" + character.lowercased() } else { result.append(character) }
        }
        return result
    }
}

/// Field rules. Messages name the field, never echo the value.
public enum Validate {
    /// A person's name: 1–100 characters, letters of any script, spaces, hyphens,
    /// apostrophes and dots; no control characters.
    public static func name(_ value: String, field: String) throws -> String {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard (1...100).contains(trimmed.count) else { throw CareError(.invalidField, "\(field) must be 1 to 100 characters") }
        let allowed = CharacterSet.letters.union(CharacterSet(charactersIn: " -'’.")).union(.nonBaseCharacters)
        guard trimmed.unicodeScalars.allSatisfy({ allowed.contains($0) }) else {
            throw CareError(.invalidField, "\(field) may contain only letters, spaces, hyphens, apostrophes and dots")
        }
        return trimmed
    }

    /// A birth date `YYYY-MM-DD`: a real calendar date, from 1900 to today.
    public static func birthDate(_ value: String, now: Date = Date()) throws -> String {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard value.count == 10, parts.count == 3, let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]) else {
            throw CareError(.invalidField, "birth_date must be YYYY-MM-DD")
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let date = calendar.date(from: DateComponents(year: year, month: month, day: day)),
            calendar.component(.day, from: date) == day, calendar.component(.month, from: date) == month
        else { throw CareError(.invalidField, "birth_date is not a calendar date") }
        guard year >= 1900, date <= now else { throw CareError(.invalidField, "birth_date must be between 1900-01-01 and today") }
        return value
    }

    /// The earliest arrival accepted.
    public static let earliestArrival = Date(timeIntervalSince1970: -2_208_988_800)  // 1900-01-01T00:00:00Z

    /// An arrival time: from 1900 to a day after `now` (a clock a little ahead is
    /// no reason to refuse; a date years ahead is a typing error).
    public static func arrival(_ date: Date, field: String, now: Date = Date()) throws -> Date {
        guard date >= earliestArrival, date <= now.addingTimeInterval(86_400) else {
            throw CareError(.invalidField, "\(field) must lie between 1900-01-01 and a day from now")
        }
        return date
    }

    /// The INS (NIR form): 13 characters (digits, or 2A/2B for Corsica in place of
    /// the department) and a 2-digit key equal to 97 − (number mod 97).
    public static func ins(_ value: String) throws -> String {
        let compact = value.replacingOccurrences(of: " ", with: "").uppercased()
        guard compact.count == 15 else { throw CareError(.invalidField, "ins must be 15 characters (13 and a 2-digit key)") }
        var body = String(compact.prefix(13))
        let department = body.dropFirst(5).prefix(2)
        // Corsica: the key is computed with 2A read as 19 and 2B as 18.
        if department == "2A" { body = body.replacingOccurrences(of: "2A", with: "19") }
        if department == "2B" { body = body.replacingOccurrences(of: "2B", with: "18") }
        guard let number = Int(body), let key = Int(compact.suffix(2)), body.allSatisfy(\.isNumber) else {
            throw CareError(.invalidField, "ins must be digits (2A or 2B allowed as department)")
        }
        guard 97 - (number % 97) == key else { throw CareError(.invalidField, "ins key does not match") }
        return compact
    }

    /// Free text: at most `limit` characters, no NUL or control characters other than newlines and tabs.
    public static func text(_ value: String, field: String, limit: Int, required: Bool = true) throws -> String {
        guard !required || !value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw CareError(.invalidField, "\(field) must not be empty")
        }
        guard value.count <= limit else { throw CareError(.invalidField, "\(field) is longer than \(limit) characters") }
        guard value.unicodeScalars.allSatisfy({ $0 == "\n" || $0 == "\t" || !CharacterSet.controlCharacters.contains($0) }) else {
            throw CareError(.invalidField, "\(field) contains control characters")
        }
        return value
    }

    /// A short label (location, box number): 1–40 printable characters.
    public static func label(_ value: String, field: String) throws -> String {
        try text(value, field: field, limit: 40)
    }
}
