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
        // Fields in their fixed order, without an intermediate array (this runs once per
        // journaled event: its allocations were a visible share of the daemon's time).
        var length = 25
        func measure(_ field: String?) { length += 2 + (field?.utf8.count ?? 0) }
        measure(source); measure(requestID); measure(actorUserID); measure(actorUsername); measure(actorRole)
        measure(actorTeam); measure(action); measure(objectType); measure(objectID); measure(patientID)
        measure(purpose); measure(result); measure(reason); measure(clientIP); measure(userAgent)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        bytes.append(Self.formatVersion)
        Self.appendInteger(sequence, to: &bytes)
        Self.appendInteger(UInt64(bitPattern: occurredAt), to: &bytes)
        Self.appendInteger(UInt64(bitPattern: sequencedAt), to: &bytes)
        func add(_ field: String?) {
            if let field { Self.appendField(field.utf8, to: &bytes) } else { Self.appendAbsentField(to: &bytes) }
        }
        add(source); add(requestID); add(actorUserID); add(actorUsername); add(actorRole)
        add(actorTeam); add(action); add(objectType); add(objectID); add(patientID)
        add(purpose); add(result); add(reason); add(clientIP); add(userAgent)
        return bytes
    }

    /// Decodes canonical bytes strictly: anything but the one encoding of valid values is refused.
    /// - Throws: ``EntryFormatError`` naming the first offending field.
    public init(canonical bytes: [UInt8]) throws {
        let scan = try CanonicalScan(bytes)
        func text(_ field: CanonicalScan.Field) -> String? { scan.string(field, in: bytes) }
        self.init(
            sequence: scan.sequence, occurredAt: scan.occurredAt, sequencedAt: scan.sequencedAt, source: text(.source) ?? "",
            requestID: text(.requestID) ?? "", actorUserID: text(.actorUserID), actorUsername: text(.actorUsername), actorRole: text(.actorRole),
            actorTeam: text(.actorTeam), action: text(.action) ?? "", objectType: text(.objectType) ?? "", objectID: text(.objectID),
            patientID: text(.patientID), purpose: text(.purpose), result: text(.result) ?? "", reason: text(.reason), clientIP: text(.clientIP),
            userAgent: text(.userAgent))
    }

    /// The fields' names (their intake columns'), in canonical order, for error messages.
    static let fieldNames = CanonicalScan.Field.columns.map(\.name)

    /// Checks every value against the rules of `journal.intake` (by checking its canonical bytes).
    /// - Throws: ``EntryFormatError`` naming the first invalid field.
    public func validate() throws {
        _ = try CanonicalScan(canonicalBytes)
    }

    /// A present field: its UTF-8 length (uint16) and bytes.
    static func appendField(_ utf8: some Collection<UInt8>, to bytes: inout [UInt8]) {
        bytes.append(UInt8(truncatingIfNeeded: utf8.count >> 8))
        bytes.append(UInt8(truncatingIfNeeded: utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// An absent field: 0xFFFF.
    static func appendAbsentField(to bytes: inout [UInt8]) {
        bytes.append(0xFF)
        bytes.append(0xFF)
    }

    static func appendInteger(_ value: UInt64, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
}

/// A strict, allocation-free check of canonical bytes: the layout, every value's
/// rules, and where each field lies. It keeps the layout, not the bytes: `verify`
/// scans each entry where the COPY stream holds it and compares fields in place;
/// ``JournalEntry/init(canonical:)`` builds strings from it.
public struct CanonicalScan {
    /// The fields, in canonical order.
    public enum Field: Int, CaseIterable, Sendable {
        case source, requestID, actorUserID, actorUsername, actorRole, actorTeam, action, objectType, objectID, patientID, purpose, result,
            reason, clientIP, userAgent
    }

    /// Per field, the lengths its intake column's CHECK allows (any length when none).
    private static let declaredLengths = Field.columns.map { $0.lengthBound ?? 0...Int.max }

    /// The sequence number.
    public let sequence: UInt64
    /// occurred_at, microseconds since the Unix epoch.
    public let occurredAt: Int64
    /// sequenced_at, microseconds since the Unix epoch.
    public let sequencedAt: Int64
    /// Per field its offset in the bytes, −1 when absent.
    private var starts = InlineArray<15, Int32>(repeating: -1)
    /// Per field its length in bytes.
    private var lengths = InlineArray<15, Int32>(repeating: 0)

    /// Scans `bytes`.
    /// - Throws: ``EntryFormatError`` naming the first offending field.
    public init(_ bytes: [UInt8]) throws {
        self = try bytes.withUnsafeBytes { try CanonicalScan(scanning: $0) }
    }

    /// Scans `bytes`, a slice of a larger buffer (a COPY stream); field positions
    /// are relative to the slice's start.
    /// - Throws: ``EntryFormatError`` naming the first offending field.
    public init(_ bytes: ArraySlice<UInt8>) throws {
        self = try bytes.withUnsafeBytes { try CanonicalScan(scanning: $0) }
    }

    /// `bytes` is lent by the public initialisers for this call only; every read is
    /// preceded by a check that it lies inside `bytes` (this module is compiled with
    /// -O, where the buffer's own bounds checks are gone), and the scan keeps offsets,
    /// never the pointer.
    private init(scanning bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count <= 65535 else { throw EntryFormatError("longer than 65,535 bytes") }
        guard !bytes.isEmpty else { throw EntryFormatError("truncated before the version byte") }
        guard bytes[0] == JournalEntry.formatVersion else { throw EntryFormatError("unknown format version") }
        guard bytes.count >= 25 else { throw EntryFormatError("truncated in the fixed header") }
        sequence = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 1, as: UInt64.self))
        occurredAt = Int64(bigEndian: bytes.loadUnaligned(fromByteOffset: 9, as: Int64.self))
        sequencedAt = Int64(bigEndian: bytes.loadUnaligned(fromByteOffset: 17, as: Int64.self))
        var offset = 25
        for field in 0..<15 {
            guard offset + 2 <= bytes.count else { throw EntryFormatError("truncated before \(JournalEntry.fieldNames[field])") }
            let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            offset += 2
            if length == 0xFFFF { continue }
            guard offset + length <= bytes.count else { throw EntryFormatError("\(JournalEntry.fieldNames[field]) runs past the end") }
            starts[field] = Int32(offset)
            lengths[field] = Int32(length)
            offset += length
        }
        guard offset == bytes.count else { throw EntryFormatError("bytes after the last field") }
        try check(bytes)
    }

    /// The bytes of a field within `bytes` (the scanned ones), or nil when absent.
    public func slice(_ field: Field, in bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        let start = Int(starts[field.rawValue])
        guard start >= 0 else { return nil }
        return bytes[(bytes.startIndex + start)..<(bytes.startIndex + start + Int(lengths[field.rawValue]))]
    }

    /// The field within `bytes`, which must be the scanned bytes (or bytes at least as
    /// long): the range is checked against them, since -O removes the buffer's own check
    /// and other bytes would otherwise be read past their end.
    private func slice(_ field: Field, in bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        let start = Int(starts[field.rawValue])
        guard start >= 0 else { return nil }
        let end = start + Int(lengths[field.rawValue])
        precondition(end <= bytes.count, "CanonicalScan used on bytes other than the scanned ones")
        return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    }

    /// A field of `bytes` (the scanned ones) as a string; the scan checked they are UTF-8.
    public func string(_ field: Field, in bytes: [UInt8]) -> String? {
        bytes.withUnsafeBytes { all in slice(field, in: all).map { String(decoding: $0, as: UTF8.self) } }
    }

    /// True when the field of `bytes` (the scanned ones) equals `other`: both absent, or the same bytes.
    public func field(_ field: Field, in bytes: ArraySlice<UInt8>, equals other: ArraySlice<UInt8>?) -> Bool {
        bytes.withUnsafeBytes { bytes in
            switch (slice(field, in: bytes), other) {
            case (nil, nil): return true
            case (let mine?, let other?): return other.withUnsafeBytes { Self.same(mine, $0) }
            default: return false
            }
        }
    }

    /// True when the field of `bytes` (the scanned ones) equals `text`: both absent, or the same UTF-8.
    public func field(_ field: Field, in bytes: ArraySlice<UInt8>, equals text: String?) -> Bool {
        guard var text else { return slice(field, in: bytes) == nil }
        return text.withUTF8 { utf8 in
            bytes.withUnsafeBytes { bytes in slice(field, in: bytes).map { Self.same($0, UnsafeRawBufferPointer(utf8)) } ?? false }
        }
    }

    /// True when a UUID field of `bytes` (the scanned ones, so lowercase text) names
    /// the same UUID as `binary` (16 bytes, as PostgreSQL sends a uuid), or both are absent.
    public func field(_ field: Field, in bytes: ArraySlice<UInt8>, equalsUUID binary: ArraySlice<UInt8>?) -> Bool {
        switch (slice(field, in: bytes), binary) {
        case (nil, nil): return true
        case (let text?, let binary?):
            guard text.count == 36, binary.count == 16 else { return false }
            // The binary UUID spelled as the scan allows it (lowercase, hyphens at 8, 13, 18 and 23), then one comparison.
            // 16 bytes spell 32 digits and 4 hyphens: the writes below fill positions 0..<36 exactly.
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 36) { spelled in
                let digits: StaticString = "0123456789abcdef"
                let hex = digits.utf8Start
                var position = 0
                for (index, byte) in binary.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        spelled[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    spelled[position] = hex[Int(byte >> 4)]
                    spelled[position + 1] = hex[Int(byte & 0x0F)]
                    position += 2
                }
                // Both are exactly 36 bytes: `text` was checked above, `spelled` was just filled.
                return text.withUnsafeBytes { memcmp(spelled.baseAddress!, $0.baseAddress!, 36) == 0 }
            }
        default: return false
        }
    }

    /// memcmp reads `one.count` bytes of each, only when the counts are equal and not zero.
    private static func same(_ one: UnsafeRawBufferPointer, _ other: UnsafeRawBufferPointer) -> Bool {
        one.count == other.count && (one.isEmpty || memcmp(one.baseAddress!, other.baseAddress!, one.count) == 0)
    }

    /// memcmp runs only when `slice` is as long as `value`, which is never empty.
    private static func isOne(_ slice: UnsafeRawBufferPointer, _ value: StaticString) -> Bool {
        value.utf8CodeUnitCount == slice.count && memcmp(value.utf8Start, slice.baseAddress!, slice.count) == 0
    }

    private static func isRole(_ slice: UnsafeRawBufferPointer) -> Bool {
        isOne(slice, "agent") || isOne(slice, "manager") || isOne(slice, "admin") || isOne(slice, "system") || isOne(slice, "dpo")
            || isOne(slice, "security-officer") || isOne(slice, "sysadmin")
    }

    /// The raw values of ``AccessAction`` (JournalEntryTests checks that the two agree).
    private static func isAction(_ slice: UnsafeRawBufferPointer) -> Bool {
        isOne(slice, "read") || isOne(slice, "update") || isOne(slice, "create") || isOne(slice, "login") || isOne(slice, "logout")
            || isOne(slice, "delete") || isOne(slice, "export") || isOne(slice, "user-admin") || isOne(slice, "key-admin")
            || isOne(slice, "journal-admin") || isOne(slice, "backup-admin") || isOne(slice, "retention-admin") || isOne(slice, "subject-request")
    }

    /// The raw values of ``AccessPurpose`` (JournalEntryTests checks that the two agree).
    private static func isPurpose(_ slice: UnsafeRawBufferPointer) -> Bool {
        isOne(slice, "care") || isOne(slice, "coordination") || isOne(slice, "administration") || isOne(slice, "audit")
            || isOne(slice, "subject-request")
    }

    private func check(_ bytes: UnsafeRawBufferPointer) throws {
        for field in 0..<15 where starts[field] < 0 {
            switch Field(rawValue: field)! {
            case .source, .requestID, .action, .objectType, .result: throw EntryFormatError("\(JournalEntry.fieldNames[field]) is missing")
            default: continue
            }
        }
        for index in 0..<15 {
            let start = Int(starts[index])
            guard start >= 0 else { continue }
            // The scan above placed every field inside `bytes`.
            let slice = UnsafeRawBufferPointer(rebasing: bytes[start..<start + Int(lengths[index])])
            guard let scalars = Self.scalarCount(slice) else { throw EntryFormatError("\(JournalEntry.fieldNames[index]) is not valid UTF-8") }
            let field = Field(rawValue: index)!
            switch field {
            case .source:
                guard Self.isName(slice, digits: true) else { throw EntryFormatError("source is not a program name") }
            case .objectType:
                guard Self.isName(slice, digits: false) else { throw EntryFormatError("object_type is not a known form") }
            case .actorUserID, .patientID:
                guard Self.isLowercaseUUID(slice) else { throw EntryFormatError("\(JournalEntry.fieldNames[index]) is not a lowercase UUID") }
            case .actorRole:
                guard Self.isRole(slice) else { throw EntryFormatError("actor_role is not a known role") }
            case .action:
                guard Self.isAction(slice) else { throw EntryFormatError("action is not a known action") }
            case .purpose:
                guard Self.isPurpose(slice) else { throw EntryFormatError("purpose is not a known purpose") }
            case .result:
                guard Self.isOne(slice, "success") || Self.isOne(slice, "denied") || Self.isOne(slice, "error") else {
                    throw EntryFormatError("result is not success, denied or error")
                }
            case .clientIP: try Self.length(.clientIP, scalars, 2...43)
            case .requestID, .actorUsername, .objectID, .actorTeam, .reason, .userAgent:
                try Self.length(field, scalars, Self.declaredLengths[index])
            }
        }
    }

    private static func length(_ field: Field, _ scalars: Int, _ allowed: ClosedRange<Int>) throws {
        guard allowed.contains(scalars) else {
            throw EntryFormatError("\(JournalEntry.fieldNames[field.rawValue]) has \(scalars) characters, allowed \(allowed)")
        }
    }

    /// The number of Unicode scalars, or nil when the bytes are not valid UTF-8.
    static func scalarCount(_ slice: UnsafeRawBufferPointer) -> Int? {
        var combined: UInt8 = 0
        for byte in slice { combined |= byte }
        if combined < 0x80 { return slice.count }
        guard String(validating: slice, as: UTF8.self) != nil else { return nil }
        return slice.reduce(0) { $0 + ($1 & 0xC0 == 0x80 ? 0 : 1) }
    }

    static func isName(_ slice: UnsafeRawBufferPointer, digits: Bool) -> Bool {
        guard (1...63).contains(slice.count), (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(slice[0]) else { return false }
        return slice.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || byte == UInt8(ascii: "-")
                || (digits ? (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) : byte == UInt8(ascii: "_"))
        }
    }

    static func isLowercaseUUID(_ slice: UnsafeRawBufferPointer) -> Bool {
        guard slice.count == 36 else { return false }
        for position in 0..<36 {
            let byte = slice[position]
            if position == 8 || position == 13 || position == 18 || position == 23 {
                guard byte == UInt8(ascii: "-") else { return false }
            } else if !((UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)) {
                return false
            }
        }
        return true
    }
}

extension CanonicalScan.Field {
    /// Each field's intake column, in canonical order: the inverse of
    /// ``IntakeColumn/canonicalField`` (IntakeColumnTests holds the two a bijection).
    static let columns: [IntakeColumn] = allCases.map { field in IntakeColumn.allCases.first { $0.canonicalField == field }! }
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
