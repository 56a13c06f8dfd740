public import Foundation

/// The rows a statement returned, copied out of libpq's result so it can cross tasks.
public struct QueryResult: Sendable {
    /// Column names in order.
    public let columns: [String]
    /// The rows, each in column order.
    public let rows: [Row]
    /// The number of rows the statement affected (`INSERT`, `UPDATE`, `DELETE`, `COPY`…), or 0.
    public let affectedRows: Int

    init(columns: [String], rows: [Row], affectedRows: Int) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
    }

    /// The only row, or nil when there is none.
    /// - Throws: ``StoreError/Code/decodingFailed`` when there is more than one.
    public func singleRow() throws -> Row? {
        guard rows.count <= 1 else { throw StoreError(.decodingFailed, "expected at most one row, got \(rows.count)") }
        return rows.first
    }
}

/// One result row. Values are PostgreSQL's text output; typed accessors parse them.
public struct Row: Sendable {
    let columnIndex: [String: Int]
    /// Each column's text, nil for SQL NULL.
    public let values: [String?]

    func index(of column: String) throws -> Int {
        guard let index = columnIndex[column] else {
            throw StoreError(.decodingFailed, "the result has no column named \(column)")
        }
        return index
    }

    func required(_ column: String) throws -> String {
        guard let value = values[try index(of: column)] else {
            throw StoreError(.decodingFailed, "column \(column) is NULL")
        }
        return value
    }

    /// True when the column is SQL NULL.
    public func isNull(_ column: String) throws -> Bool { values[try index(of: column)] == nil }

    /// The column as text.
    public func string(_ column: String) throws -> String { try required(column) }
    /// The column as text, or nil for NULL.
    public func optionalString(_ column: String) throws -> String? { values[try index(of: column)] }

    /// The column as a 64-bit integer.
    public func int64(_ column: String) throws -> Int64 {
        guard let value = Int64(try required(column)) else {
            throw StoreError(.decodingFailed, "column \(column) is not an integer")
        }
        return value
    }

    /// The column as an integer.
    public func int(_ column: String) throws -> Int { Int(try int64(column)) }

    /// The column as an integer, or nil for NULL.
    public func optionalInt64(_ column: String) throws -> Int64? {
        try isNull(column) ? nil : try int64(column)
    }

    /// The column as a boolean (`t` or `f`).
    public func bool(_ column: String) throws -> Bool {
        switch try required(column) {
        case "t": return true
        case "f": return false
        default: throw StoreError(.decodingFailed, "column \(column) is not a boolean")
        }
    }

    /// The column as a double.
    public func double(_ column: String) throws -> Double {
        guard let value = Double(try required(column)) else {
            throw StoreError(.decodingFailed, "column \(column) is not a number")
        }
        return value
    }

    /// A `bytea` column (hex output form).
    public func bytes(_ column: String) throws -> [UInt8] {
        let text = try required(column)
        guard let value = Hex.decodeBytea(text) else {
            throw StoreError(.decodingFailed, "column \(column) is not bytea in hex form")
        }
        return value
    }

    /// A `bytea` column, or nil for NULL.
    public func optionalBytes(_ column: String) throws -> [UInt8]? {
        try isNull(column) ? nil : try bytes(column)
    }

    /// A `timestamptz` column.
    public func date(_ column: String) throws -> Date {
        guard let value = PostgresTimestamp.parse(try required(column)) else {
            throw StoreError(.decodingFailed, "column \(column) is not a timestamp with time zone")
        }
        return value
    }

    /// A `timestamptz` column, or nil for NULL.
    public func optionalDate(_ column: String) throws -> Date? {
        try isNull(column) ? nil : try date(column)
    }

    /// A `uuid` column.
    public func uuid(_ column: String) throws -> UUID {
        guard let value = UUID(uuidString: try required(column)) else {
            throw StoreError(.decodingFailed, "column \(column) is not a uuid")
        }
        return value
    }
}

enum Hex {
    static func decodeBytea(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"), utf8.count % 2 == 0 else {
            return nil
        }
        var out = [UInt8]()
        out.reserveCapacity((utf8.count - 2) / 2)
        var index = 2
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: return nil
        }
    }
}
