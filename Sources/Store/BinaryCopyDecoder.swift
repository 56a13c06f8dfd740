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
    /// The field table reused from row to row by ``forEachRow(in:_:)``.
    private var fieldScratch: [Int] = []

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

        /// An `integer` column.
        public func int32(_ index: Int) throws -> Int32 {
            guard let range = ranges[index], range.count == 4 else { throw StoreError(.decodingFailed, "binary column \(index) is not 4 bytes") }
            return Int32(bitPattern: range.reduce(UInt32(0)) { $0 << 8 | UInt32(storage[$1]) })
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

        /// Field `index`'s binary send form as received (a slice of the stream's buffer, not
        /// a copy), or nil for NULL.
        public func field(_ index: Int) -> ArraySlice<UInt8>? { ranges[index].map { storage[$0] } }

        /// Appends field `index` to `encoder` exactly as it came (its binary send form,
        /// or NULL): for a column copied unchanged from one binary COPY stream into
        /// another column of the same type, without decoding and encoding it again.
        public func copyField(_ index: Int, to encoder: inout BinaryCopyEncoder) {
            guard let range = ranges[index] else { return encoder.null() }
            encoder.field(storage[range])
        }

        /// A `uuid` column as lowercase text, or nil for NULL.
        public func uuid(_ index: Int) throws -> String? {
            guard let range = ranges[index] else { return nil }
            guard range.count == 16 else { throw StoreError(.decodingFailed, "binary column \(index) is not a uuid") }
            var text: [UInt8] = []
            text.reserveCapacity(36)
            BinaryCopyDecoder.appendUUIDText(storage[range], to: &text)
            return String(decoding: text, as: UTF8.self)
        }
    }

    /// Appends the 16 bytes of a binary `uuid` as its lowercase hyphenated text
    /// (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`), as PostgreSQL prints it.
    @inlinable
    public static func appendUUIDText(_ raw: ArraySlice<UInt8>, to bytes: inout [UInt8]) {
        let digits: StaticString = "0123456789abcdef"
        digits.withUTF8Buffer { digits in
            for (position, byte) in raw.enumerated() {
                if position == 4 || position == 6 || position == 8 || position == 10 { bytes.append(UInt8(ascii: "-")) }
                bytes.append(digits[Int(byte >> 4)])
                bytes.append(digits[Int(byte & 0x0F)])
            }
        }
    }

    /// One row's fields as slices of the buffer that carried it: no copy and no
    /// allocation a row, for streams of millions of rows.
    public struct RowView {
        private let data: [UInt8]
        /// Per field its start in `data` and its length (−1 for NULL).
        private let fields: [Int]

        init(data: [UInt8], fields: [Int]) {
            self.data = data
            self.fields = fields
        }

        /// The number of fields.
        public var count: Int { fields.count / 2 }

        /// A column's bytes (a slice of the buffer, not a copy), or nil for NULL.
        public func bytes(_ index: Int) -> ArraySlice<UInt8>? {
            let length = fields[2 * index + 1]
            guard length >= 0 else { return nil }
            return data[fields[2 * index]..<fields[2 * index] + length]
        }

        /// An `int8` or `timestamptz` column (for `timestamptz`: microseconds since 2000-01-01 UTC).
        public func int64(_ index: Int) throws -> Int64 {
            guard let value = bytes(index), value.count == 8 else { throw StoreError(.decodingFailed, "binary column \(index) is not 8 bytes") }
            // The slice is exactly 8 bytes (checked above): the load stays inside it.
            return value.withUnsafeBytes { Int64(bigEndian: $0.loadUnaligned(as: Int64.self)) }
        }
    }

    /// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
    public static let postgresEpochOffset: Int64 = 946_684_800_000_000

    /// Adds a chunk and returns the complete rows it finished.
    /// - Throws: ``StoreError`` when the stream is not binary COPY output.
    public mutating func feed(_ chunk: [UInt8]) throws -> [Row] {
        let data = joiningPending(chunk)
        var rows: [Row] = []
        var fields: [Int] = []
        let consumed = try data.withUnsafeBytes { buffer in
            try parse(buffer, fields: &fields) { fields in
                rows.append(Row(storage: data, ranges: stride(from: 0, to: fields.count, by: 2).map { index in
                    fields[index + 1] < 0 ? nil : fields[index]..<fields[index] + fields[index + 1]
                }))
            }
        }
        if !finished, consumed < data.count { pending = Array(data[consumed...]) }
        return rows
    }

    /// Adds a buffer (copied where a row continues into the next one) and calls
    /// `body` with each row it completes.
    /// - Throws: ``StoreError`` when the stream is not binary COPY output, or what `body` throws.
    public mutating func forEachRow(in buffer: [UInt8], _ body: (RowView) throws -> Void) throws {
        let data = joiningPending(buffer)
        var fields = fieldScratch
        fieldScratch = []
        defer { fieldScratch = fields }
        let consumed = try data.withUnsafeBytes { bytes in
            try parse(bytes, fields: &fields) { fields in try body(RowView(data: data, fields: fields)) }
        }
        if !finished, consumed < data.count { pending = Array(data[consumed...]) }
    }

    /// `chunk` after the bytes of an incomplete row carried over from the last one.
    private mutating func joiningPending(_ chunk: [UInt8]) -> [UInt8] {
        guard !pending.isEmpty else { return chunk }
        var data = pending
        pending = []
        data.append(contentsOf: chunk)
        return data
    }

    /// Parses the header and the complete rows of `data`, handing each row's field
    /// table (start and length a field) to `row`; returns how many bytes it used.
    ///
    /// `data` is the caller's array, lent for this call. Every load is preceded by a
    /// check that the bytes it reads lie inside `data` (these modules are compiled
    /// with -O, where the buffer's own bounds checks are gone): 19 bytes for the
    /// header, 2 for a row's field count, 4 for a field's length, and a field's
    /// length in bytes before the next position moves past it.
    private mutating func parse(_ data: UnsafeRawBufferPointer, fields: inout [Int], row: ([Int]) throws -> Void) throws -> Int {
        func int32(at offset: Int) -> Int { Int(Int32(bigEndian: data.loadUnaligned(fromByteOffset: offset, as: Int32.self))) }
        var position = 0
        if !sawHeader {
            guard data.count >= 19 else { return 0 }
            guard data[0..<11].elementsEqual(Self.signature) else { throw StoreError(.decodingFailed, "not binary COPY output") }
            let extensionLength = int32(at: 15)
            guard extensionLength >= 0, data.count >= 19 + extensionLength else { return 0 }
            position = 19 + extensionLength
            sawHeader = true
        }
        rows: while !finished, data.count - position >= 2 {
            let count = Int(Int16(bigEndian: data.loadUnaligned(fromByteOffset: position, as: Int16.self)))
            if count == -1 {
                finished = true
                return position + 2
            }
            guard count >= 0 else { throw StoreError(.decodingFailed, "binary COPY row with \(count) fields") }
            var cursor = position + 2
            fields.removeAll(keepingCapacity: true)
            for _ in 0..<count {
                guard data.count - cursor >= 4 else { break rows }
                let length = int32(at: cursor)
                cursor += 4
                fields.append(cursor)
                fields.append(max(length, -1))
                guard length > 0 else { continue }
                guard data.count - cursor >= length else { break rows }
                cursor += length
            }
            try row(fields)
            position = cursor
        }
        return position
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

    /// An `integer` field.
    public mutating func int32(_ value: Int32) {
        appendInt32(4)
        appendInt32(value)
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
        // The 16 bytes from the 32 hex digits (hyphens anywhere ignored), read from the
        // string's contiguous UTF-8 where it has one (native strings do).
        var high: UInt64 = 0
        var low: UInt64 = 0
        func parse(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
            var digits = 0
            for character in text {
                let nibble: UInt64
                switch character {
                case UInt8(ascii: "-"): continue
                case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = UInt64(character &- 48)
                case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = UInt64(character &- 87)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = UInt64(character &- 55)
                default: return false
                }
                if digits < 16 { high = high << 4 | nibble } else if digits < 32 { low = low << 4 | nibble }
                digits += 1
            }
            return digits == 32
        }
        let parsed = value.utf8.withContiguousStorageIfAvailable(parse) ?? Array(value.utf8).withUnsafeBufferPointer(parse)
        guard parsed else { throw StoreError(.invalidArgument, "not a UUID") }
        appendInt32(16)
        withUnsafeBytes(of: high.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: low.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func finish() {
        bytes.append(0xFF)
        bytes.append(0xFF)
    }

    private mutating func appendInt32(_ value: Int32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// A field whose binary send form is `form` (copied from another binary COPY stream).
    mutating func field(_ form: ArraySlice<UInt8>) {
        appendInt32(Int32(form.count))
        bytes.append(contentsOf: form)
    }

    private mutating func appendInt64(_ value: Int64) {
        let bits = UInt64(bitPattern: value)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
    }
}

extension Connection {
    /// Runs a binary `COPY … TO STDOUT` and returns its decoded rows (for batches
    /// that fit in memory; stream larger results with ``copyOutInPlace(_:_:)``).
    public func copyRows(_ sql: String) throws -> [BinaryCopyDecoder.Row] {
        var decoder = BinaryCopyDecoder()
        var rows: [BinaryCopyDecoder.Row] = []
        try copyOutInPlace(sql) { chunk in rows += try decoder.feed(Array(chunk)) }
        return rows
    }
}
