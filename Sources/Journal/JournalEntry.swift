public import Foundation

/// Why some bytes are not a journal entry in canonical form.
public struct EntryFormatError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, naming the field; never the field's content.
    public let reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { "journal.entry-format: \(reason)" }
}

/// One journal entry: an access event with its place in the journal.
///
/// Its canonical bytes (format version 1, specified in `docs/journal.md`) are what
/// the Merkle tree and the hash chain commit to and what the database stores:
///
///     0x01                      format version
///     uint64 BE                 sequence number
///     int64 BE                  occurred_at, microseconds since 1970-01-01T00:00:00Z
///     int64 BE                  sequenced_at, microseconds since 1970-01-01T00:00:00Z
///     15 × field                source, request_id, actor_user_id, actor_username,
///                               actor_role, actor_team, action, object_type, object_id,
///                               patient_id, purpose, result, reason, client_ip, user_agent
///
/// where a field is `uint16 BE length ‖ UTF-8 bytes`, or the length 0xFFFF alone when
/// absent. Each value has exactly one encoding, so a strict decoder (this one) that
/// accepts the bytes proves them canonical.
public struct JournalEntry: Sendable, Hashable, Codable {
    /// The position in the journal, from 0 without gaps.
    public var sequence: UInt64
    /// When the event happened, in microseconds since the Unix epoch (UTC).
    public var occurredAt: Int64
    /// When osmose-journald sequenced it, in microseconds since the Unix epoch (UTC).
    public var sequencedAt: Int64
    /// The program that recorded it.
    public var source: String
    /// The request's id.
    public var requestID: String
    /// The acting user's id (lowercase UUID), when known.
    public var actorUserID: String?
    /// The acting user's login name, when known.
    public var actorUsername: String?
    /// The actor's role.
    public var actorRole: String?
    /// The actor's team code.
    public var actorTeam: String?
    /// What was done (``AccessAction`` raw value).
    public var action: String
    /// The kind of object.
    public var objectType: String
    /// The object's id.
    public var objectID: String?
    /// The patient concerned (lowercase UUID).
    public var patientID: String?
    /// The declared purpose (``AccessPurpose`` raw value).
    public var purpose: String?
    /// The outcome (``AccessResult`` raw value).
    public var result: String
    /// The code of a denial or error.
    public var reason: String?
    /// The client's IP address as PostgreSQL prints an `inet` host.
    public var clientIP: String?
    /// The client's user agent.
    public var userAgent: String?

    /// The version byte that starts canonical bytes of this format.
    public static let formatVersion: UInt8 = 1
    static let absent: UInt16 = 0xFFFF
    static let roles: Set<String> = ["agent", "manager", "admin", "system", "dpo", "security-officer", "sysadmin"]
    static let actions = Set(AccessAction.allCases.map(\.rawValue))
    static let purposes = Set(AccessPurpose.allCases.map(\.rawValue))
    static let results: Set<String> = ["success", "denied", "error"]

    /// Creates an entry; the caller is responsible for valid values (``validate()``).
    public init(
        sequence: UInt64, occurredAt: Int64, sequencedAt: Int64, source: String, requestID: String, actorUserID: String? = nil,
        actorUsername: String? = nil, actorRole: String? = nil, actorTeam: String? = nil, action: String, objectType: String,
        objectID: String? = nil, patientID: String? = nil, purpose: String? = nil, result: String, reason: String? = nil,
        clientIP: String? = nil, userAgent: String? = nil
    ) {
        self.sequence = sequence
        self.occurredAt = occurredAt
        self.sequencedAt = sequencedAt
        self.source = source
        self.requestID = requestID
        self.actorUserID = actorUserID
        self.actorUsername = actorUsername
        self.actorRole = actorRole
        self.actorTeam = actorTeam
        self.action = action
        self.objectType = objectType
        self.objectID = objectID
        self.patientID = patientID
        self.purpose = purpose
        self.result = result
        self.reason = reason
        self.clientIP = clientIP
        self.userAgent = userAgent
    }

    /// The canonical bytes.
    public var canonicalBytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(160 + (userAgent?.utf8.count ?? 0))
        bytes.append(Self.formatVersion)
        Self.appendInteger(sequence, to: &bytes)
        Self.appendInteger(UInt64(bitPattern: occurredAt), to: &bytes)
        Self.appendInteger(UInt64(bitPattern: sequencedAt), to: &bytes)
        for field in fields {
            guard let field else {
                bytes.append(0xFF)
                bytes.append(0xFF)
                continue
            }
            let utf8 = field.utf8
            bytes.append(UInt8(truncatingIfNeeded: utf8.count >> 8))
            bytes.append(UInt8(truncatingIfNeeded: utf8.count))
            bytes.append(contentsOf: utf8)
        }
        return bytes
    }

    private var fields: [String?] {
        [source, requestID, actorUserID, actorUsername, actorRole, actorTeam, action, objectType, objectID, patientID, purpose, result, reason, clientIP, userAgent]
    }

    /// Decodes canonical bytes strictly: anything but the one encoding of valid values is refused.
    /// - Throws: ``EntryFormatError`` naming the first offending field.
    public init(canonical bytes: [UInt8]) throws {
        var reader = Reader(bytes: bytes)
        guard bytes.count <= 65535 else { throw EntryFormatError("longer than 65,535 bytes") }
        guard try reader.byte() == Self.formatVersion else { throw EntryFormatError("unknown format version") }
        let sequence = try reader.integer()
        let occurredAt = Int64(bitPattern: try reader.integer())
        let sequencedAt = Int64(bitPattern: try reader.integer())
        var values: [String?] = []
        values.reserveCapacity(15)
        for name in Self.fieldNames { values.append(try reader.field(name)) }
        guard reader.isAtEnd else { throw EntryFormatError("bytes after the last field") }
        func required(_ index: Int) throws -> String {
            guard let value = values[index] else { throw EntryFormatError("\(Self.fieldNames[index]) is missing") }
            return value
        }
        self.init(
            sequence: sequence, occurredAt: occurredAt, sequencedAt: sequencedAt, source: try required(0), requestID: try required(1),
            actorUserID: values[2], actorUsername: values[3], actorRole: values[4], actorTeam: values[5], action: try required(6),
            objectType: try required(7), objectID: values[8], patientID: values[9], purpose: values[10], result: try required(11),
            reason: values[12], clientIP: values[13], userAgent: values[14])
        try validate()
    }

    static let fieldNames = [
        "source", "request_id", "actor_user_id", "actor_username", "actor_role", "actor_team", "action", "object_type", "object_id",
        "patient_id", "purpose", "result", "reason", "client_ip", "user_agent",
    ]

    /// Checks every value against the rules of `journal.intake`.
    /// - Throws: ``EntryFormatError`` naming the first invalid field.
    public func validate() throws {
        guard Self.isSourceName(source) else { throw EntryFormatError("source is not a program name") }
        try Self.check("request_id", requestID, length: 1...128)
        if let actorUserID, !Self.isLowercaseUUID(actorUserID) { throw EntryFormatError("actor_user_id is not a lowercase UUID") }
        if let actorUsername { try Self.check("actor_username", actorUsername, length: 0...128) }
        if let actorRole, !Self.roles.contains(actorRole) { throw EntryFormatError("actor_role is not a known role") }
        if let actorTeam { try Self.check("actor_team", actorTeam, length: 0...64) }
        guard Self.actions.contains(action) else { throw EntryFormatError("action is not a known action") }
        guard Self.isObjectType(objectType) else { throw EntryFormatError("object_type is not a known form") }
        if let objectID { try Self.check("object_id", objectID, length: 0...128) }
        if let patientID, !Self.isLowercaseUUID(patientID) { throw EntryFormatError("patient_id is not a lowercase UUID") }
        if let purpose, !Self.purposes.contains(purpose) { throw EntryFormatError("purpose is not a known purpose") }
        guard Self.results.contains(result) else { throw EntryFormatError("result is not success, denied or error") }
        if let reason { try Self.check("reason", reason, length: 0...200) }
        if let clientIP { try Self.check("client_ip", clientIP, length: 2...43) }
        if let userAgent { try Self.check("user_agent", userAgent, length: 0...512) }
    }

    private static func check(_ name: String, _ value: String, length: ClosedRange<Int>) throws {
        // Code points never outnumber UTF-8 bytes: count them only when the byte count is not conclusive.
        let bytes = value.utf8.count
        if bytes <= length.upperBound && (length.lowerBound == 0 || length.lowerBound == 1 && bytes >= 1) { return }
        let characters = value.unicodeScalars.count
        guard length.contains(characters) else { throw EntryFormatError("\(name) has \(characters) characters, allowed \(length)") }
    }

    static func isSourceName(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...63).contains(bytes.count), (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(bytes[0]) else { return false }
        return bytes.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "-") }
    }

    static func isObjectType(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...63).contains(bytes.count), (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(bytes[0]) else { return false }
        return bytes.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    static func isLowercaseUUID(_ text: String) -> Bool {
        let bytes = text.utf8
        guard bytes.count == 36 else { return false }
        for (index, byte) in bytes.enumerated() {
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return false }
            } else if !((UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)) {
                return false
            }
        }
        return true
    }

    static func appendInteger(_ value: UInt64, to bytes: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0
        var isAtEnd: Bool { offset == bytes.count }

        mutating func byte() throws -> UInt8 {
            guard offset < bytes.count else { throw EntryFormatError("truncated before the version byte") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func integer() throws -> UInt64 {
            guard offset + 8 <= bytes.count else { throw EntryFormatError("truncated in the fixed header") }
            var value: UInt64 = 0
            for index in offset..<offset + 8 { value = value << 8 | UInt64(bytes[index]) }
            offset += 8
            return value
        }

        mutating func field(_ name: String) throws -> String? {
            guard offset + 2 <= bytes.count else { throw EntryFormatError("truncated before \(name)") }
            let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            offset += 2
            if length == Int(JournalEntry.absent) { return nil }
            guard offset + length <= bytes.count else { throw EntryFormatError("\(name) runs past the end") }
            defer { offset += length }
            let slice = bytes[offset..<offset + length]
            // Most fields are ASCII, which is valid UTF-8 as it is.
            if slice.allSatisfy({ $0 < 0x80 }) { return String(decoding: slice, as: UTF8.self) }
            guard let text = String(validating: slice, as: UTF8.self) else {
                throw EntryFormatError("\(name) is not valid UTF-8")
            }
            return text
        }
    }
}

extension JournalEntry {
    /// `occurredAt` as a date.
    public var occurredDate: Date { Date(timeIntervalSince1970: Double(occurredAt) / 1_000_000) }
    /// `sequencedAt` as a date.
    public var sequencedDate: Date { Date(timeIntervalSince1970: Double(sequencedAt) / 1_000_000) }

    /// A timestamp in microseconds as RFC 3339 UTC with six decimals, e.g. `2026-11-22T04:30:00.123456Z`.
    public static func rfc3339(microseconds: Int64) -> String {
        let seconds = microseconds >= 0 ? microseconds / 1_000_000 : (microseconds - 999_999) / 1_000_000
        let fraction = microseconds - seconds * 1_000_000
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(fraction))
    }
}
