import Age
import Archive
import Foundation
import Journal
import Store

/// What ``MonthArchiveWriter/write(_:to:recipients:writtenBy:now:readAlong:copies:on:)`` wrote.
struct WrittenArchive: Sendable {
    /// Where, under which name.
    let path: String
    let fileName: String
    /// The encrypted file's SHA-256 (hex) and size.
    let sha256: String
    let bytes: Int64
    /// `month.json` and `manifest.json`, and the manifest's SHA-256 (hex).
    let summary: MonthSummary
    let manifest: ArchiveManifest
    let manifestSHA256: String
    /// chain_{first−1} and chain_{last}.
    let chainBefore: [UInt8]
    let chainAfter: [UInt8]
    /// Who wrote it and when (microseconds since the Unix epoch).
    let writtenBy: String
    let writtenAt: Int64
}

/// Streams one month from the database into a new cold archive: nothing of the
/// month is held in memory beyond one entry bundle and one batch of tiles.
enum MonthArchiveWriter {
    /// Writes the archive of `content` to `path` (which must not exist), encrypted to
    /// `recipients`, reading everything in the caller's REPEATABLE READ transaction;
    /// `readAlong`, if given, lets another thread read the file back as it grows;
    /// `copies` receive the same bytes as they are written (none may exist).
    /// - Throws: ``JournalArchiveError`` `.inconsistent` when the journal lacks a tile or
    ///   an entry the month needs; ``ArchiveError`` when the file cannot be written.
    static func write(
        _ content: MonthContent, to path: String, recipients: [any AgePublicRecipient], writtenBy: String, now: Int64, readAlong: GrowingFile? = nil,
        copies: [String] = [], on connection: isolated Connection
    ) throws -> WrittenArchive {
        let month = content.month
        let modified = Int(now / 1_000_000)
        let covering = try Checkpoint(text: SignedNote.text(of: content.covering.note))
        let summary = MonthSummary(
            format: ArchiveLayout.formatName, version: ArchiveLayout.formatVersion, origin: covering.origin, month: month,
            firstSequence: content.firstSequence, lastSequence: content.lastSequence, entryCount: content.entryCount,
            chainBefore: Data(content.chainBefore).base64EncodedString(), chainAfter: Data(content.chainAfter).base64EncodedString(),
            covering: MonthSummary.Covering(id: content.covering.id, size: content.covering.treeSize, root: Data(content.covering.rootHash).base64EncodedString()),
            firstCheckpointID: content.firstCheckpointID, lastCheckpointID: content.covering.id, checkpointCount: content.checkpointCount)

        let writer = try EncryptedArchiveWriter(path: path, recipients: recipients, readAlong: readAlong, copies: copies)
        try writer.addBytes(Array(ArchiveLayout.readmeText(month: month, origin: covering.origin).utf8), as: ArchiveLayout.readme(month), modified: modified)
        try writer.addBytes(try ArchiveJSON.encode(summary), as: ArchiveLayout.summary(month), modified: modified)
        try writeCheckpoints(content, into: writer, modified: modified, on: connection)
        try writer.addBytes(Array(content.covering.note.utf8), as: ArchiveLayout.checkpoint(month), modified: modified)
        let tileCount = try writeTiles(content, into: writer, modified: modified, on: connection)
        let entries = try writeEntries(content, into: writer, modified: modified, on: connection)
        let manifest = ArchiveManifest(
            format: ArchiveLayout.formatName, version: ArchiveLayout.formatVersion, month: month,
            occurredFrom: JournalEntry.rfc3339(microseconds: entries.occurredFrom), occurredTo: JournalEntry.rfc3339(microseconds: entries.occurredTo),
            tileCount: tileCount, bundleCount: entries.bundles, writtenAt: JournalEntry.rfc3339(microseconds: now), writtenBy: writtenBy,
            // The format's members are path, size and SHA-256 (docs/retention.md); where each
            // zstd frame starts is the backups' concern, not the journal archive's.
            members: writer.members.map { ArchiveMember(path: $0.path, size: $0.size, sha256: $0.sha256) })
        let manifestMember = try writer.addBytes(try ArchiveJSON.encode(manifest), as: ArchiveLayout.manifest(month), modified: modified)
        try writer.finish()
        guard let sha256 = writer.fileSHA256 else { throw JournalArchiveError(.file, "\(path): the archive's digest was not computed") }
        return WrittenArchive(
            path: path, fileName: (path as NSString).lastPathComponent, sha256: sha256, bytes: writer.bytesWritten, summary: summary, manifest: manifest,
            manifestSHA256: manifestMember.sha256, chainBefore: content.chainBefore, chainAfter: content.chainAfter, writtenBy: writtenBy, writtenAt: now)
    }

    /// `checkpoints`: every note from the first checkpoint over the month to the covering one, each followed by an empty line.
    private static func writeCheckpoints(_ content: MonthContent, into writer: EncryptedArchiveWriter, modified: Int, on connection: isolated Connection) throws {
        let newline: [UInt8] = [0x0A]
        try writer.addStreamed(name: ArchiveLayout.checkpoints(content.month), size: content.checkpointBytes, mode: 0o640, modified: modified) { sink in
            var decoder = BinaryCopyDecoder()
            try connection.copyOutGathered(
                "COPY (SELECT note FROM journal.checkpoints WHERE id BETWEEN \(content.firstCheckpointID) AND \(content.covering.id) ORDER BY id) TO STDOUT (FORMAT binary)",
                bufferBytes: 1 << 20
            ) { buffer in
                try decoder.forEachRow(in: buffer) { row in
                    guard let note = row.bytes(0) else { throw JournalArchiveError(.inconsistent, "a checkpoint of \(content.month) has no note") }
                    try sink(note)
                    try sink(newline[...])
                }
            }
        }
    }

    /// The hash tiles of the covering checkpoint's tree, from the tile holding the
    /// month's first entry to the right edge, level by level; returns how many. Full
    /// tiles stream through one binary COPY per level.
    private static func writeTiles(_ content: MonthContent, into writer: EncryptedArchiveWriter, modified: Int, on connection: isolated Connection) throws -> Int {
        let size = content.covering.treeSize
        let reader = DatabaseTreeReader(connection: connection)
        var written = 0
        var level = 0
        while size >> UInt64(8 * level) > 0 {
            let nodes = size >> UInt64(8 * level)
            let fullCount = nodes >> 8
            var next = content.firstSequence >> UInt64(8 * (level + 1))
            if next < fullCount {
                var decoder = BinaryCopyDecoder()
                try connection.copyOutGathered(
                    "COPY (SELECT tile_index, hashes FROM journal.tiles WHERE level = \(level) AND tile_index >= \(next) AND tile_index < \(fullCount) ORDER BY tile_index) TO STDOUT (FORMAT binary)",
                    bufferBytes: 1 << 20
                ) { buffer in
                    try decoder.forEachRow(in: buffer) { row in
                        let index = UInt64(bitPattern: try row.int64(0))
                        guard index == next, let hashes = row.bytes(1), hashes.count == HashTile.width * 32 else {
                            throw JournalArchiveError(.inconsistent, "hash tile \(level)/\(next) is missing from the journal: run osmosectl journal verify")
                        }
                        try writer.addBytes(Array(hashes), as: ArchiveLayout.tile(content.month, level: level, index: index, width: nil), modified: modified)
                        next += 1
                    }
                }
                guard next == fullCount else {
                    throw JournalArchiveError(.inconsistent, "hash tile \(level)/\(next) is missing from the journal: run osmosectl journal verify")
                }
                written += Int(fullCount - (content.firstSequence >> UInt64(8 * (level + 1))))
            }
            let width = Int(nodes & 0xFF)
            if width > 0 {
                let hashes = try reader.hashes(level: level, range: (fullCount << 8)..<(fullCount << 8) + UInt64(width))
                try writer.addBytes(hashes.flatMap { $0 }, as: ArchiveLayout.tile(content.month, level: level, index: fullCount, width: width), modified: modified)
                written += 1
            }
            level += 1
        }
        return written
    }

    /// The month's entries as entry bundles aligned on the log's (one per 256
    /// sequence numbers); returns how many bundles and the occurred_at range.
    private static func writeEntries(_ content: MonthContent, into writer: EncryptedArchiveWriter, modified: Int, on connection: isolated Connection) throws
        -> (bundles: Int, occurredFrom: Int64, occurredTo: Int64)
    {
        let month = content.month
        var next = content.firstSequence
        var bundle: [UInt8] = []
        bundle.reserveCapacity(1 << 20)
        var bundles = 0
        var occurredFrom = Int64.max
        var occurredTo = Int64.min
        var decoder = BinaryCopyDecoder()
        try connection.copyOutGathered(
            """
            COPY (SELECT seq, canonical, occurred_at FROM journal.entries
                WHERE sequenced_at >= '\(JournalEntry.rfc3339(microseconds: month.start))' AND sequenced_at < '\(JournalEntry.rfc3339(microseconds: month.end))'
                ORDER BY seq) TO STDOUT (FORMAT binary)
            """,
            bufferBytes: 1 << 20
        ) { buffer in
            try decoder.forEachRow(in: buffer) { row in
                let sequence = UInt64(bitPattern: try row.int64(0))
                guard sequence == next else {
                    throw JournalArchiveError(.inconsistent, "entry \(next) of \(month) is missing (the next stored one is \(sequence)): run osmosectl journal verify")
                }
                guard let canonical = row.bytes(1), !canonical.isEmpty, canonical.count <= 65535 else {
                    throw JournalArchiveError(.inconsistent, "entry \(sequence) has no canonical bytes: run osmosectl journal verify")
                }
                let occurred = try row.int64(2) + BinaryCopyDecoder.postgresEpochOffset
                occurredFrom = min(occurredFrom, occurred)
                occurredTo = max(occurredTo, occurred)
                bundle.append(UInt8(canonical.count >> 8))
                bundle.append(UInt8(canonical.count & 0xFF))
                bundle.append(contentsOf: canonical)
                if sequence & 0xFF == 0xFF || sequence == content.lastSequence {
                    try writer.addBytes(bundle, as: ArchiveLayout.bundle(month, index: sequence >> 8), modified: modified)
                    bundles += 1
                    bundle.removeAll(keepingCapacity: true)
                }
                next += 1
            }
        }
        guard next == content.lastSequence + 1 else {
            throw JournalArchiveError(.inconsistent, "\(month) ends at entry \(next - 1), not at \(content.lastSequence): run osmosectl journal verify")
        }
        return (bundles, occurredFrom, occurredTo)
    }
}
