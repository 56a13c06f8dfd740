import Glibc

/// Texts as the intake records them, one implementation for every writer of intake
/// rows (the care service, the intake socket, ``AccessEvent/system(by:action:objectType:objectID:patientID:purpose:result:reason:)``
/// and, as a last guard, ``IntakeColumn/value(in:)``).
///
/// Lengths are counted in code points, as the intake's CHECKs count them with
/// `length()`: `unicodeScalars` here, never `String.count` (grapheme clusters; one
/// letter followed by hundreds of combining marks is one grapheme).
///
/// Some characters are never recorded as sent: NUL (PostgreSQL's `text` cannot hold
/// it, so the insert, and with it the request, would fail), the other control
/// characters (C0, DEL, C1: a newline in a user agent would forge a line in any
/// text export), line and paragraph separators, and the bidirectional controls
/// that make a text display in another order than it is stored. A writer that
/// records what a client chose (``bounded(_:to:)``) replaces each of them with
/// ``replacementMarker`` and cuts an over-long text to its bound, ending it with
/// ``cutMarker``: the value is recorded replaced, with a marker, never dropped. A
/// writer that may refuse (the intake socket) asks ``problem(in:limit:)`` instead
/// and names the field.
public enum JournalText {
    /// `actor_username`'s bound.
    public static let usernameLimit = IntakeColumn.actorUsername.maximumLength
    /// `object_id`'s bound.
    public static let objectIDLimit = IntakeColumn.objectID.maximumLength
    /// `reason`'s bound.
    public static let reasonLimit = IntakeColumn.reason.maximumLength
    /// `user_agent`'s bound.
    public static let userAgentLimit = IntakeColumn.userAgent.maximumLength

    /// Recorded in place of each character that cannot be recorded: U+FFFD REPLACEMENT CHARACTER.
    public static let replacementMarker: Unicode.Scalar = "\u{FFFD}"
    /// Ends a text that was cut at its column's bound: U+2026 HORIZONTAL ELLIPSIS.
    public static let cutMarker: Unicode.Scalar = "\u{2026}"

    /// Why a text cannot be recorded as it is.
    public enum Problem: Sendable, Hashable, CustomStringConvertible {
        /// It holds a NUL character.
        case nul
        /// It holds another character that is never recorded (its code point).
        case unrecordableCharacter(UInt32)
        /// It is longer than its column allows, in code points.
        case tooLong(codePoints: Int, limit: Int)

        /// What is wrong, naming no part of the value but the offending code point.
        public var description: String {
            switch self {
            case .nul: "contains a NUL character"
            case .unrecordableCharacter(let value): "contains a control character (U+\(String(value, radix: 16, uppercase: true).leftPadded(to: 4)))"
            case .tooLong(let codePoints, let limit): "has \(codePoints) characters, at most \(limit) allowed"
            }
        }
    }

    /// True for a code point recorded as it is: anything but NUL and the other
    /// control characters (U+0001–U+001F, U+007F–U+009F), the line and paragraph
    /// separators (U+2028, U+2029) and the bidirectional controls (U+061C,
    /// U+200E, U+200F, U+202A–U+202E, U+2066–U+2069).
    public static func isRecordable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: false
        case 0x2028, 0x2029: false
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: false
        default: true
        }
    }

    /// The first reason `text` cannot be recorded as it is in a column of at most
    /// `limit` code points, or nil when it can.
    public static func problem(in text: String, limit: Int = .max) -> Problem? {
        var count = 0
        for scalar in text.unicodeScalars {
            if scalar.value == 0 { return .nul }
            if !isRecordable(scalar) { return .unrecordableCharacter(scalar.value) }
            count += 1
        }
        return count > limit ? .tooLong(codePoints: count, limit: limit) : nil
    }

    /// `text` as it can be recorded in a column of at most `limit` code points: each
    /// character that cannot be recorded replaced with ``replacementMarker``, then,
    /// when still longer than `limit`, cut to `limit − 1` code points followed by
    /// ``cutMarker``. A text that can be recorded comes back unchanged.
    public static func bounded(_ text: String, to limit: Int) -> String {
        if isPlainASCII(text, within: limit) { return text }
        let scalars = text.unicodeScalars
        var kept = String.UnicodeScalarView()
        let keep = scalars.count > limit ? max(0, limit - 1) : scalars.count
        for scalar in scalars.prefix(keep) { kept.append(isRecordable(scalar) ? scalar : replacementMarker) }
        if keep < scalars.count && limit > 0 { kept.append(cutMarker) }
        return String(kept)
    }

    /// `text` as it can be recorded in `column` (``bounded(_:to:)`` at the column's bound).
    public static func bounded(_ text: String, for column: IntakeColumn) -> String {
        bounded(text, to: column.maximumLength)
    }

    /// An IPv4 or IPv6 address in the form PostgreSQL prints an `inet` host back
    /// (`abbrev()`), so that an event's canonical bytes hold the same text; nil when
    /// `text` is not an address (a network, a host name, a port, brackets, spaces).
    public static func canonicalAddress(_ text: String) -> String? {
        // inet_pton reads a C string: a NUL inside `text` would end it early.
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") || ($0 < 0x80 && Character(Unicode.Scalar($0)).isHexDigit) })
        else { return nil }
        var v4 = in_addr()
        var v6 = in6_addr()
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if inet_pton(AF_INET, text, &v4) == 1, inet_ntop(AF_INET, &v4, &buffer, socklen_t(buffer.count)) != nil {
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        if inet_pton(AF_INET6, text, &v6) == 1, inet_ntop(AF_INET6, &v6, &buffer, socklen_t(buffer.count)) != nil {
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return nil
    }

    /// True when `text` is printable ASCII of at most `limit` bytes: recorded as it is,
    /// found without decoding a scalar (user agents, ids and codes nearly always are).
    private static func isPlainASCII(_ text: String, within limit: Int) -> Bool {
        var text = text
        return text.withUTF8 { bytes in bytes.count <= limit && bytes.allSatisfy { $0 >= 0x20 && $0 < 0x7F } }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
