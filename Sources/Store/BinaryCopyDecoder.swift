/// Decodes the output of `COPY … TO STDOUT (FORMAT binary)` as it arrives, in
/// whatever chunks libpq hands over: the 19-byte header, then per row an int16
/// field count and per field an int32 length (−1 for NULL) and the value in the
/// type's binary send format (int8 and timestamptz big-endian, uuid 16 bytes,
/// text UTF-8, bytea as is). Avoids hex-decoding large bytea columns.
public struct BinaryCopyDecoder: Sendable {
    private static let signature: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00]
    /// Bytes of an incomplete row carried over to the next chunk.
    private var pending: [UInt8] = []
    private var sawHeader = false
    private var finished = false

    /// A decoder awaiting the header.
    public init() {}

    /// One row's fields, read in place from the chunk that carried it (libpq hands
    /// over one row per chunk, so a row costs no copy and one small allocation).
    public struct Row: Sendable {
        private let storage: [UInt8]
        private let ranges: [Range<Int>?]

        init(storage: [UInt8], ranges: [Range<Int>?]) {
            self.storage = storage
            self.ranges = ranges
        }

        /// The number of fields.
        public var count: Int { ranges.count }

        /// An `int8` or `timestamptz` column (for `timestamptz`: microseconds since 2000-01-01 UTC).
        public func int64(_ index: Int) throws -> Int64 {
            guard let range = ranges[index], range.count == 8 else { throw StoreError(.decodingFailed, "binary column \(index) is not 8 bytes") }
            var value: Int64 = 0
            for offset in range { value = value << 8 | Int64(storage[offset]) }
            return value
        }

        /// A column's bytes, or nil for NULL.
        public func bytes(_ index: Int) -> [UInt8]? { ranges[index].map { Array(storage[$0]) } }

        /// A `text` column, or nil for NULL.
        public func text(_ index: Int) throws -> String? {
            guard let range = ranges[index] else { return nil }
            let slice = storage[range]
            if slice.allSatisfy({ $0 < 0x80 }) { return String(decoding: slice, as: UTF8.self) }
            guard let text = String(validating: slice, as: UTF8.self) else { throw StoreError(.decodingFailed, "binary column \(index) is not UTF-8") }
            return text
        }

        /// A `uuid` column as lowercase text, or nil for NULL.
        public func uuid(_ index: Int) throws -> String? {
            guard let range = ranges[index] else { return nil }
            guard range.count == 16 else { throw StoreError(.decodingFailed, "binary column \(index) is not a uuid") }
            let digits: StaticString = "0123456789abcdef"
            return String(unsafeUninitializedCapacity: 36) { text in
                var written = 0
                digits.withUTF8Buffer { digits in
                    for (position, offset) in range.enumerated() {
                        if position == 4 || position == 6 || position == 8 || position == 10 {
                            text[written] = UInt8(ascii: "-")
                            written += 1
                        }
                        text[written] = digits[Int(storage[offset] >> 4)]
                        text[written + 1] = digits[Int(storage[offset] & 0x0F)]
                        written += 2
                    }
                }
                return written
            }
        }
    }

    /// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
    public static let postgresEpochOffset: Int64 = 946_684_800_000_000

    /// Adds a chunk and returns the complete rows it finished.
    /// - Throws: ``StoreError`` when the stream is not binary COPY output.
    public mutating func feed(_ chunk: [UInt8]) throws -> [Row] {
        let data: [UInt8]
        if pending.isEmpty {
            data = chunk
        } else {
            pending.append(contentsOf: chunk)
            data = pending
            pending = []
        }
        var position = 0
        var rows: [Row] = []
        func int32(at offset: Int) -> Int {
            Int(Int32(bitPattern: UInt32(data[offset]) << 24 | UInt32(data[offset + 1]) << 16 | UInt32(data[offset + 2]) << 8 | UInt32(data[offset + 3])))
        }
        if !sawHeader {
            guard data.count >= 19 else {
                pending = data
                return rows
            }
            guard Array(data[0..<11]) == Self.signature else { throw StoreError(.decodingFailed, "not binary COPY output") }
            let extensionLength = int32(at: 15)
            guard extensionLength >= 0, data.count >= 19 + extensionLength else {
                pending = data
                return rows
            }
            position = 19 + extensionLength
            sawHeader = true
        }
        while !finished, data.count - position >= 2 {
            let count = Int(Int16(bitPattern: UInt16(data[position]) << 8 | UInt16(data[position + 1])))
            if count == -1 {
                finished = true
                position += 2
                break
            }
            var cursor = position + 2
            var ranges: [Range<Int>?] = []
            ranges.reserveCapacity(count)
            var complete = true
            for _ in 0..<count {
                guard data.count - cursor >= 4 else {
                    complete = false
                    break
                }
                let length = int32(at: cursor)
                cursor += 4
                if length < 0 {
                    ranges.append(nil)
                    continue
                }
                guard data.count - cursor >= length else {
                    complete = false
                    break
                }
                ranges.append(cursor..<cursor + length)
                cursor += length
            }
            guard complete else { break }
            rows.append(Row(storage: data, ranges: ranges))
            position = cursor
        }
        if !finished, position < data.count { pending = Array(data[position...]) }
        return rows
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
