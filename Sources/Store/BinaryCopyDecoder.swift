/// Decodes the output of `COPY … TO STDOUT (FORMAT binary)` as it arrives, in
/// whatever chunks libpq hands over: the 19-byte header, then per row an int16
/// field count and per field an int32 length (−1 for NULL) and the value in the
/// type's binary send format (int8 and timestamptz big-endian, uuid 16 bytes,
/// text UTF-8, bytea as is). Avoids hex-decoding large bytea columns.
public struct BinaryCopyDecoder: Sendable {
    private static let signature: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00]
    private var buffer: [UInt8] = []
    private var position = 0
    private var sawHeader = false
    private var finished = false

    /// A decoder awaiting the header.
    public init() {}

    /// One row's fields; nil for NULL.
    public struct Row: Sendable {
        /// The values in column order.
        public let fields: [[UInt8]?]

        /// An `int8` or `timestamptz` column (for `timestamptz`: microseconds since 2000-01-01 UTC).
        public func int64(_ index: Int) throws -> Int64 {
            guard let bytes = fields[index], bytes.count == 8 else { throw StoreError(.decodingFailed, "binary column \(index) is not 8 bytes") }
            return bytes.reduce(0) { $0 << 8 | Int64($1) }
        }

        /// A column's bytes, or nil for NULL.
        public func bytes(_ index: Int) -> [UInt8]? { fields[index] }

        /// A `text` column, or nil for NULL.
        public func text(_ index: Int) throws -> String? {
            guard let bytes = fields[index] else { return nil }
            guard let text = String(validating: bytes, as: UTF8.self) else { throw StoreError(.decodingFailed, "binary column \(index) is not UTF-8") }
            return text
        }

        /// A `uuid` column as lowercase text, or nil for NULL.
        public func uuid(_ index: Int) throws -> String? {
            guard let bytes = fields[index] else { return nil }
            guard bytes.count == 16 else { throw StoreError(.decodingFailed, "binary column \(index) is not a uuid") }
            let digits = Array("0123456789abcdef".utf8)
            var text: [UInt8] = []
            text.reserveCapacity(36)
            for (index, byte) in bytes.enumerated() {
                if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
                text.append(digits[Int(byte >> 4)])
                text.append(digits[Int(byte & 0x0F)])
            }
            return String(decoding: text, as: UTF8.self)
        }
    }

    /// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
    public static let postgresEpochOffset: Int64 = 946_684_800_000_000

    /// Adds a chunk and returns the complete rows it finished.
    /// - Throws: ``StoreError`` when the stream is not binary COPY output.
    public mutating func feed(_ chunk: [UInt8]) throws -> [Row] {
        if position > 0 && position == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            position = 0
        } else if position > 1 << 20 {
            buffer.removeFirst(position)
            position = 0
        }
        buffer.append(contentsOf: chunk)
        var rows: [Row] = []
        if !sawHeader {
            guard buffer.count - position >= 19 else { return rows }
            guard Array(buffer[position..<position + 11]) == Self.signature else { throw StoreError(.decodingFailed, "not binary COPY output") }
            let extensionLength = Int(readInt32(at: position + 15))
            guard buffer.count - position >= 19 + extensionLength else { return rows }
            position += 19 + extensionLength
            sawHeader = true
        }
        while !finished, buffer.count - position >= 2 {
            let count = Int(Int16(bitPattern: UInt16(buffer[position]) << 8 | UInt16(buffer[position + 1])))
            if count == -1 {
                finished = true
                position += 2
                break
            }
            var cursor = position + 2
            var fields: [[UInt8]?] = []
            fields.reserveCapacity(count)
            var complete = true
            for _ in 0..<count {
                guard buffer.count - cursor >= 4 else {
                    complete = false
                    break
                }
                let length = Int(readInt32(at: cursor))
                cursor += 4
                if length < 0 {
                    fields.append(nil)
                    continue
                }
                guard buffer.count - cursor >= length else {
                    complete = false
                    break
                }
                fields.append(Array(buffer[cursor..<cursor + length]))
                cursor += length
            }
            guard complete else { break }
            rows.append(Row(fields: fields))
            position = cursor
        }
        return rows
    }

    private func readInt32(at offset: Int) -> Int32 {
        Int32(bitPattern: UInt32(buffer[offset]) << 24 | UInt32(buffer[offset + 1]) << 16 | UInt32(buffer[offset + 2]) << 8 | UInt32(buffer[offset + 3]))
    }
}

/// Builds the input of `COPY … FROM STDIN (FORMAT binary)`: the header, then per
/// row a field count and each field as an int32 length and its binary send form.
/// Writing binary avoids formatting and escaping every value as text.
public struct BinaryCopyEncoder: Sendable {
    /// The bytes so far (header included); hand them to ``CopyInWriter/write(_:)``.
    public private(set) var bytes: [UInt8]

    /// An encoder holding the header.
    public init(reservingCapacity capacity: Int = 0) {
        bytes = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]
        bytes.reserveCapacity(capacity + bytes.count)
    }

    /// Starts a row of `fields` fields.
    public mutating func beginRow(fields: Int) {
        bytes.append(UInt8(truncatingIfNeeded: fields >> 8))
        bytes.append(UInt8(truncatingIfNeeded: fields))
    }

    /// A NULL field.
    public mutating func null() { appendInt32(-1) }

    /// An `int8` field.
    public mutating func int64(_ value: Int64) {
        appendInt32(8)
        appendInt64(value)
    }

    /// A `smallint` field.
    public mutating func int16(_ value: Int16) {
        appendInt32(2)
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    /// A `timestamptz` field from microseconds since the Unix epoch.
    public mutating func timestamp(microsecondsSinceUnixEpoch value: Int64) {
        int64(value - BinaryCopyDecoder.postgresEpochOffset)
    }

    /// A `bytea` field.
    public mutating func bytea(_ value: [UInt8]) {
        appendInt32(Int32(value.count))
        bytes.append(contentsOf: value)
    }

    /// A `text` field, or NULL.
    public mutating func text(_ value: String?) {
        guard let value else { return null() }
        let utf8 = value.utf8
        appendInt32(Int32(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// A `uuid` field from its text form, or NULL.
    /// - Throws: ``StoreError`` when the text is not a UUID.
    public mutating func uuid(_ value: String?) throws {
        guard let value else { return null() }
        var utf8 = value.utf8.makeIterator()
        var digits = 0
        var pending: UInt8 = 0
        let start = bytes.count
        appendInt32(16)
        while let character = utf8.next() {
            let nibble: UInt8
            switch character {
            case UInt8(ascii: "-"): continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = character - 48
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = character - 87
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = character - 55
            default:
                bytes.removeSubrange(start...)
                throw StoreError(.invalidArgument, "not a UUID")
            }
            if digits & 1 == 0 { pending = nibble << 4 } else { bytes.append(pending | nibble) }
            digits += 1
        }
        guard digits == 32 else {
            bytes.removeSubrange(start...)
            throw StoreError(.invalidArgument, "not a UUID")
        }
    }

    /// Ends the data (the trailer); nothing may be added afterwards.
    public mutating func finish() {
        bytes.append(0xFF)
        bytes.append(0xFF)
    }

    private mutating func appendInt32(_ value: Int32) {
        let bits = UInt32(bitPattern: value)
        bytes.append(UInt8(truncatingIfNeeded: bits >> 24))
        bytes.append(UInt8(truncatingIfNeeded: bits >> 16))
        bytes.append(UInt8(truncatingIfNeeded: bits >> 8))
        bytes.append(UInt8(truncatingIfNeeded: bits))
    }

    private mutating func appendInt64(_ value: Int64) {
        let bits = UInt64(bitPattern: value)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
    }
}
