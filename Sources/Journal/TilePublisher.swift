public import Store

/// Writes the journal as a C2SP tlog-tiles tree (the checkpoint, the hash tiles and
/// the entry bundles) into a directory that a static web server publishes.
public struct TilePublisher: Sendable {
    /// Full hash tiles are read from the database this many at a time.
    private static let tilesPerRead: UInt64 = 1000

    /// The directory written into.
    public let directory: String

    /// A publisher into `directory` (created if needed); files of the same path are replaced.
    public init(directory: String) {
        self.directory = directory
    }

    /// Writes the tree of checkpoint `id` (the latest when nil): every full hash tile
    /// as stored, the partial tiles derived from the tree, every entry bundle, and the
    /// checkpoint last. Run it in one REPEATABLE READ transaction, so that the
    /// checkpoint and the tree are read from the same snapshot.
    /// - Returns: the checkpoint published and how many files were written.
    /// - Throws: ``JournalError`` `.notFound` when there is no such checkpoint (or none
    ///   yet), `.inconsistentState` when entries of the tree are not stored (purged
    ///   months are published from their cold archive), `.invalidArgument` when a file
    ///   cannot be written; ``StoreError`` from the database.
    public func publish(checkpoint id: Int64?, on connection: isolated Connection) throws -> TilePublication {
        guard let record = try JournalDatabase.checkpoint(idOrLatest: id, on: connection) else { throw JournalError(.notFound, "no checkpoint yet") }
        var files = try writeHashTiles(size: record.treeSize, on: connection)
        files += try writeEntryBundles(size: record.treeSize, on: connection)
        try ExportFile.write(Array(record.note.utf8), to: directory + "/checkpoint")
        return TilePublication(checkpoint: record, files: files + 1)
    }

    /// Writes the hash tiles of a tree of `size` entries, level by level; returns how many.
    private func writeHashTiles(size: UInt64, on connection: isolated Connection) throws -> Int {
        let reader = DatabaseTreeReader(connection: connection)
        var files = 0
        var level = 0
        while size >> UInt64(8 * level) > 0 {
            let nodes = size >> UInt64(8 * level)
            let fullCount = nodes >> 8
            var index: UInt64 = 0
            while index < fullCount {
                for tile in try JournalDatabase.fullTiles(level: level, indices: index..<min(fullCount, index + Self.tilesPerRead), on: connection) {
                    try ExportFile.write(tile.hashes, to: directory + "/" + JournalFormats.tilePath(level: level, index: tile.index))
                    files += 1
                }
                index += Self.tilesPerRead
            }
            let width = Int(nodes & 0xFF)
            if width > 0 {
                let hashes = try reader.hashes(level: level, range: (fullCount << 8)..<(fullCount << 8) + UInt64(width))
                try ExportFile.write(hashes.flatMap { $0 }, to: directory + "/" + JournalFormats.tilePath(level: level, index: fullCount, partialWidth: width))
                files += 1
            }
            level += 1
        }
        return files
    }

    /// Writes the entry bundles of a tree of `size` entries, 256 entries each; returns how many.
    private func writeEntryBundles(size: UInt64, on connection: isolated Connection) throws -> Int {
        var bundle: UInt64 = 0
        while bundle << 8 < size {
            let start = bundle << 8
            let end = min(size, (bundle + 1) << 8)
            let entries = try JournalDatabase.canonicalBytes(start..<end, on: connection)
            guard entries.count == Int(end - start) else {
                throw JournalError(.inconsistentState, "entries \(start)…\(end - 1) are not all stored (purged months are published from their cold archive)")
            }
            let width = Int(end - start)
            try ExportFile.write(
                JournalFormats.entryBundle(entries), to: directory + "/" + JournalFormats.tilePath(level: nil, index: bundle, partialWidth: width == 256 ? nil : width))
            bundle += 1
        }
        return Int(bundle)
    }
}

/// What ``TilePublisher/publish(checkpoint:on:)`` wrote.
public struct TilePublication: Sendable, Hashable {
    /// The checkpoint whose tree was published.
    public let checkpoint: CheckpointRecord
    /// How many files were written, the checkpoint included.
    public let files: Int
}
