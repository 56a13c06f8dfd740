/// Which journal entries an export or a batch of proofs covers: a contiguous range
/// of sequence numbers, or scattered ones (a patient's entries, a search's hits),
/// kept sorted and without repeats.
public struct EntrySelection: Sendable, Hashable, CustomStringConvertible {
    let indices: SortedIndices

    private init(_ indices: SortedIndices) {
        self.indices = indices
    }

    /// The entries `range` (both ends included).
    public static func range(_ range: ClosedRange<UInt64>) -> EntrySelection {
        EntrySelection(.range(range.lowerBound..<range.upperBound + 1))
    }

    /// The entries `sequences`, in any order; repeats count once.
    public static func sequences(_ sequences: some Sequence<UInt64>) -> EntrySelection {
        var sorted = Array(sequences)
        sorted.sort()
        var unique: [UInt64] = []
        unique.reserveCapacity(sorted.count)
        for sequence in sorted where unique.last != sequence { unique.append(sequence) }
        return EntrySelection(.list(unique))
    }

    /// How many entries.
    public var count: Int { indices.count }

    /// True when it holds no entry.
    public var isEmpty: Bool { indices.isEmpty }

    /// The lowest sequence number, if any.
    public var first: UInt64? {
        switch indices {
        case .range(let range): return range.isEmpty ? nil : range.lowerBound
        case .list(let list): return list.first
        }
    }

    /// The highest sequence number, if any.
    public var last: UInt64? {
        switch indices {
        case .range(let range): return range.isEmpty ? nil : range.upperBound - 1
        case .list(let list): return list.last
        }
    }

    /// True for a contiguous range.
    public var isContiguous: Bool {
        if case .range = indices { return true }
        return false
    }

    /// The sequence numbers, in order (for a range, every one of them).
    public var sequences: [UInt64] { indices.values }

    /// `12-345` for a range, `1000 entries in 12-98765` for scattered ones.
    public var description: String {
        guard let first, let last else { return "no entries" }
        return isContiguous ? "\(first)-\(last)" : "\(count) entries in \(first)-\(last)"
    }

    /// The selection cut into consecutive chunks, each read in one round trip: entries
    /// lying in at most `maximumTiles` level-0 tiles, about `maximumEntries` at most (a
    /// range fills its tiles, scattered entries such as a patient's lie about one a
    /// tile). A chunk ends on a tile boundary: a tile's entries are never split between
    /// two chunks, since each tile is read once, with the first entry that needs it.
    /// Made as they are read, so that a long list of sequence numbers is not copied whole.
    func chunks(maximumTiles: Int = 256, maximumEntries: Int = 16_384) -> SelectionChunks {
        precondition(maximumTiles > 0 && maximumEntries > 0)
        return SelectionChunks(indices: indices, maximumTiles: maximumTiles, maximumEntries: maximumEntries)
    }
}

/// The chunks of a selection (``EntrySelection/chunks(maximumTiles:maximumEntries:)``), in order.
struct SelectionChunks: Sequence, IteratorProtocol {
    private let indices: SortedIndices
    private let maximumTiles: Int
    private let maximumEntries: Int
    /// Where the next chunk starts: a sequence number (range) or a position (list).
    private var cursor: UInt64 = 0

    init(indices: SortedIndices, maximumTiles: Int, maximumEntries: Int) {
        self.indices = indices
        self.maximumTiles = maximumTiles
        self.maximumEntries = maximumEntries
        if case .range(let range) = indices { cursor = range.lowerBound }
    }

    mutating func next() -> SelectionChunk? {
        switch indices {
        case .range(let range):
            guard cursor < range.upperBound else { return nil }
            let tiles = UInt64(Swift.max(1, Swift.min(maximumTiles, maximumEntries / HashTile.width)))
            let start = cursor
            cursor = Swift.min(range.upperBound, ((start >> 8) + tiles) << 8)
            return SelectionChunk(sequences: .range(start..<cursor))
        case .list(let list):
            var position = Int(cursor)
            guard position < list.count else { return nil }
            let start = position
            var tiles = 0
            while position < list.count {
                let newTile = position == start || list[position - 1] >> 8 != list[position] >> 8
                if newTile && (tiles == maximumTiles || position - start >= maximumEntries) { break }
                if newTile { tiles += 1 }
                position += 1
            }
            cursor = UInt64(position)
            return SelectionChunk(sequences: .list(Array(list[start..<position])))
        }
    }
}

/// Consecutive entries of a selection, lying in a few level-0 tiles.
struct SelectionChunk: Sendable {
    let sequences: SortedIndices

    /// The level-0 tiles holding the entries, ascending, each with its entries.
    var tiles: [(index: UInt64, sequences: SortedIndices)] {
        switch sequences {
        case .range(let range):
            var tiles: [(UInt64, SortedIndices)] = []
            var start = range.lowerBound
            while start < range.upperBound {
                let end = min(range.upperBound, ((start >> 8) + 1) << 8)
                tiles.append((start >> 8, .range(start..<end)))
                start = end
            }
            return tiles
        case .list(let list):
            var tiles: [(UInt64, SortedIndices)] = []
            var run: [UInt64] = []
            for sequence in list {
                if let previous = run.last, previous >> 8 != sequence >> 8 {
                    tiles.append((previous >> 8, .list(run)))
                    run = []
                }
                run.append(sequence)
            }
            if let previous = run.last { tiles.append((previous >> 8, .list(run))) }
            return tiles
        }
    }
}
