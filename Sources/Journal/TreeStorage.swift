import Store

/// Sorted numbers without repeats (sequence numbers or tile indices): a contiguous
/// range, or a list.
enum SortedIndices: Sendable, Hashable {
    case range(Range<UInt64>)
    case list([UInt64])

    var count: Int {
        switch self {
        case .range(let range): return Int(range.upperBound - range.lowerBound)
        case .list(let list): return list.count
        }
    }

    var isEmpty: Bool { count == 0 }

    /// The numbers, in order.
    var values: [UInt64] {
        switch self {
        case .range(let range): return Array(range)
        case .list(let list): return list
        }
    }

    /// A condition on `column` that holds for exactly these numbers. The numbers are
    /// integers this process formatted, never text from outside, so they may stand in
    /// the SQL of a COPY (which takes no parameters).
    func sqlCondition(_ column: String) -> String {
        switch self {
        case .range(let range): return "\(column) >= \(range.lowerBound) AND \(column) < \(range.upperBound)"
        case .list(let list):
            if let first = list.first, let last = list.last, last - first + 1 == UInt64(list.count) {
                return "\(column) >= \(first) AND \(column) <= \(last)"
            }
            return "\(column) = ANY('{\(list.map(String.init).joined(separator: ","))}'::bigint[])"
        }
    }
}

/// An entry's sequence number and canonical bytes, where the read that brought them
/// holds them.
struct CanonicalRow: Sendable {
    let sequence: UInt64
    let canonical: ArraySlice<UInt8>
}

/// Where proofs read the stored tree: PostgreSQL (``DatabaseTreeStorage``), or
/// memory in tests. Every call is one read, whatever the number of tiles or entries.
protocol TreeStorage {
    /// The stored full tiles of `level` among `indices`, by index (8,192 bytes each);
    /// tiles not stored are absent.
    func fullTiles(level: Int, indices: SortedIndices) throws -> [UInt64: [UInt8]]
    /// The stored leaf hashes of the entries in `range`, concatenated in order (fewer
    /// when some entries are not stored).
    func leafHashes(_ range: Range<UInt64>) throws -> [UInt8]
    /// The canonical bytes of the entries `sequences`, in order (fewer when some are not stored).
    func entries(_ sequences: SortedIndices) throws -> [CanonicalRow]
}

/// The journal's tables as ``TreeStorage``: one binary COPY a call. Use on the
/// connection's thread only, inside the caller's transaction.
final class DatabaseTreeStorage: TreeStorage {
    private let connection: Connection
    /// How many tiles and entries were read.
    private(set) var tilesRead = 0
    private(set) var entriesRead = 0

    init(connection: isolated Connection) {
        self.connection = connection
    }

    func fullTiles(level: Int, indices: SortedIndices) throws -> [UInt64: [UInt8]] {
        guard !indices.isEmpty else { return [:] }
        let rows = try connection.assumeIsolated { connection in
            try connection.copyRows(
                "COPY (SELECT tile_index, hashes FROM journal.tiles WHERE level = \(level) AND \(indices.sqlCondition("tile_index"))) TO STDOUT (FORMAT binary)")
        }
        var tiles: [UInt64: [UInt8]] = [:]
        for row in rows {
            let index = UInt64(bitPattern: try row.int64(0))
            guard let hashes = row.bytes(1), hashes.count == HashTile.width * 32 else {
                throw JournalError(.inconsistentState, "hash tile \(level)/\(index) is not 8,192 bytes")
            }
            tiles[index] = hashes
        }
        tilesRead += tiles.count
        return tiles
    }

    func leafHashes(_ range: Range<UInt64>) throws -> [UInt8] {
        var hashes: [UInt8] = []
        hashes.reserveCapacity(Int(range.upperBound - range.lowerBound) * 32)
        try stream("SELECT seq, leaf_hash FROM journal.entries WHERE \(SortedIndices.range(range).sqlCondition("seq")) ORDER BY seq") { row in
            guard let hash = row.bytes(1), hash.count == 32 else { throw JournalError(.inconsistentState, "a stored leaf hash is not 32 bytes") }
            hashes += hash
        }
        return hashes
    }

    func entries(_ sequences: SortedIndices) throws -> [CanonicalRow] {
        guard !sequences.isEmpty else { return [] }
        var rows: [CanonicalRow] = []
        rows.reserveCapacity(sequences.count)
        try stream("SELECT seq, canonical FROM journal.entries WHERE \(sequences.sqlCondition("seq")) ORDER BY seq") { row in
            rows.append(CanonicalRow(sequence: UInt64(bitPattern: try row.int64(0)), canonical: row.bytes(1) ?? []))
        }
        entriesRead += rows.count
        return rows
    }

    /// Runs `query` as a binary COPY and hands each row to `body`; the row's bytes stay
    /// in the large buffers the COPY was gathered into (no copy a row).
    private func stream(_ query: String, _ body: (BinaryCopyDecoder.RowView) throws -> Void) throws {
        let buffers = try connection.assumeIsolated { connection in
            var buffers: [[UInt8]] = []
            try connection.copyOutGathered("COPY (\(query)) TO STDOUT (FORMAT binary)", bufferBytes: 1 << 20) { buffers.append($0) }
            return buffers
        }
        var decoder = BinaryCopyDecoder()
        for buffer in buffers { try decoder.forEachRow(in: buffer, body) }
    }
}
