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

/// What one read brings back: full tiles of several levels, leaf hashes, entries.
struct StorageRequest: Sendable {
    /// Full tiles wanted, per level.
    var tiles: [Int: SortedIndices] = [:]
    /// Entries whose stored leaf hashes are wanted.
    var leafHashes: Range<UInt64>?
    /// Entries whose canonical bytes are wanted.
    var entries: SortedIndices?

    var isEmpty: Bool { tiles.values.allSatisfy(\.isEmpty) && (leafHashes?.isEmpty ?? true) && (entries?.isEmpty ?? true) }
}

/// The answer to a ``StorageRequest``; what is not stored is absent.
struct StorageReply: Sendable {
    /// Full tiles found, 8,192 bytes each.
    var tiles: [TileKey: [UInt8]] = [:]
    /// The leaf hashes found, concatenated in sequence order (fewer than asked when
    /// entries are missing).
    var leafHashes: [UInt8] = []
    /// The entries found, in sequence order.
    var entries: [CanonicalRow] = []
}

/// Where proofs read the stored tree: PostgreSQL (``DatabaseTreeStorage``). Every
/// request is one round trip, whatever the number of tiles and entries it asks for.
protocol TreeStorage {
    func read(_ request: StorageRequest) throws -> StorageReply
}

extension TreeStorage {
    /// The stored full tiles of `level` among `indices`, by index.
    func fullTiles(level: Int, indices: SortedIndices) throws -> [UInt64: [UInt8]] {
        var found: [UInt64: [UInt8]] = [:]
        for (key, bytes) in try read(StorageRequest(tiles: [level: indices])).tiles { found[key.index] = bytes }
        return found
    }
}

/// The journal's tables as ``TreeStorage``: each request is one binary COPY of a
/// `UNION ALL` of what it asks for. Use on the connection's thread only, inside the
/// caller's transaction.
final class DatabaseTreeStorage: TreeStorage {
    private let connection: Connection
    /// How many tiles and entries were read.
    private(set) var tilesRead = 0
    private(set) var entriesRead = 0

    init(connection: isolated Connection) {
        self.connection = connection
    }

    /// The kinds of rows of a reply: column 0 of each row.
    private enum Kind: Int64 {
        case tile = 0, leafHash = 1, entry = 2
    }

    func read(_ request: StorageRequest) throws -> StorageReply {
        var parts: [String] = []
        for (level, indices) in request.tiles.sorted(by: { $0.key < $1.key }) where !indices.isEmpty {
            parts.append(
                "SELECT \(Kind.tile.rawValue)::int8, \(level)::int8, tile_index, hashes FROM journal.tiles WHERE level = \(level) AND \(indices.sqlCondition("tile_index"))")
        }
        if let range = request.leafHashes, !range.isEmpty {
            parts.append(
                "(SELECT \(Kind.leafHash.rawValue)::int8, 0::int8, seq, leaf_hash FROM journal.entries WHERE \(SortedIndices.range(range).sqlCondition("seq")) ORDER BY seq)")
        }
        if let sequences = request.entries, !sequences.isEmpty {
            parts.append("(SELECT \(Kind.entry.rawValue)::int8, 0::int8, seq, canonical FROM journal.entries WHERE \(sequences.sqlCondition("seq")) ORDER BY seq)")
        }
        var reply = StorageReply()
        guard !parts.isEmpty else { return reply }
        let buffers = try connection.assumeIsolated { connection in
            var buffers: [[UInt8]] = []
            try connection.copyOutGathered("COPY (\(parts.joined(separator: " UNION ALL "))) TO STDOUT (FORMAT binary)", bufferBytes: 1 << 20) {
                buffers.append($0)
            }
            return buffers
        }
        var leaves: [(UInt64, ArraySlice<UInt8>)] = []
        var decoder = BinaryCopyDecoder()
        for buffer in buffers {
            try decoder.forEachRow(in: buffer) { row in
                let index = UInt64(bitPattern: try row.int64(2))
                let bytes = row.bytes(3) ?? []
                switch Kind(rawValue: try row.int64(0)) {
                case .tile:
                    let level = Int(try row.int64(1))
                    guard bytes.count == HashTile.width * 32 else { throw JournalError(.inconsistentState, "hash tile \(level)/\(index) is not 8,192 bytes") }
                    reply.tiles[TileKey(level: level, index: index)] = Array(bytes)
                case .leafHash:
                    guard bytes.count == 32 else { throw JournalError(.inconsistentState, "the stored leaf hash of entry \(index) is not 32 bytes") }
                    leaves.append((index, bytes))
                case .entry:
                    reply.entries.append(CanonicalRow(sequence: index, canonical: bytes))
                case nil:
                    throw JournalError(.inconsistentState, "unexpected row in a tree read")
                }
            }
        }
        // Each part is read in order; the parts of a UNION ALL may come interleaved.
        if !leaves.isSorted(by: { $0.0 < $1.0 }) { leaves.sort { $0.0 < $1.0 } }
        if !reply.entries.isSorted(by: { $0.sequence < $1.sequence }) { reply.entries.sort { $0.sequence < $1.sequence } }
        reply.leafHashes.reserveCapacity(leaves.count * 32)
        for (_, hash) in leaves { reply.leafHashes += hash }
        tilesRead += reply.tiles.count
        entriesRead += reply.entries.count
        return reply
    }
}

extension Sequence {
    /// True when every element is in order by `areInIncreasingOrder` relative to the next.
    fileprivate func isSorted(by areInIncreasingOrder: (Element, Element) -> Bool) -> Bool {
        var previous: Element?
        for element in self {
            if let previous, areInIncreasingOrder(element, previous) { return false }
            previous = element
        }
        return true
    }
}
