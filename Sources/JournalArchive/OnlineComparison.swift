import Archive
import Cryptography
import Foundation
import Journal
import Store

/// An archive compared with the online journal, in one snapshot: the checkpoints and
/// hash tiles it holds must be the database's (both are kept forever), the chain
/// around the month must agree with the stored entries where they still are, and a
/// recorded archive of the month must be this very file.
enum OnlineComparison {
    static func problems(
        summary: MonthSummary, facts: OnlineFacts, fileSHA256: String?, manifestSHA256: String?, on connection: isolated Connection
    ) throws -> [ArchiveProblem] {
        var problems: [ArchiveProblem] = []
        func problem(_ code: ArchiveProblem.Code, _ sequence: UInt64?, _ message: String) {
            problems.append(ArchiveProblem(code: code, sequence: sequence, message: message))
        }
        let month = summary.month
        if let record = try MonthCatalogue.record(of: month, on: connection) {
            if record.archiveSHA256 != fileSHA256 || record.manifestSHA256 != manifestSHA256 {
                problem(.record, nil, "the database records another archive of \(month) (\(record.fileName), sha256 \(record.archiveSHA256.prefix(16))…)")
            }
            if record.firstSequence != summary.firstSequence || record.lastSequence != summary.lastSequence || record.coveringCheckpoint != summary.covering.id {
                problem(.record, nil, "the database records \(month) as entries \(record.firstSequence)…\(record.lastSequence), covering #\(record.coveringCheckpoint)")
            }
        }
        let covering = try? JournalDatabase.checkpoint(id: summary.covering.id, on: connection)
        if covering?.note != facts.coveringNote {
            problem(.online, summary.lastSequence, "checkpoint #\(summary.covering.id) in the database is not the archive's covering checkpoint")
        }
        if try checkpointsDigest(summary.firstCheckpointID...summary.lastCheckpointID, on: connection) != facts.checkpointsSHA256 {
            problem(.online, summary.firstSequence, "checkpoints #\(summary.firstCheckpointID)…#\(summary.lastCheckpointID) in the database differ from the archive's")
        }
        problems += try tileProblems(summary, facts, on: connection)
        if let online = try MonthCatalogue.bounds(of: month, on: connection) {
            if online != (summary.firstSequence, summary.lastSequence) {
                problem(.online, summary.firstSequence, "\(month) holds entries \(online.first)…\(online.last) in the database")
            }
            let after = try connection.query("SELECT chain_hash FROM journal.entries WHERE seq = $1", [Int64(summary.lastSequence)]).singleRow()
            if try after.map({ Data(try $0.bytes("chain_hash")).base64EncodedString() }) != summary.chainAfter {
                problem(.online, summary.lastSequence, "the stored chain hash of entry \(summary.lastSequence) is not the archive's chain_after")
            }
        }
        if summary.firstSequence > 0,
            let before = try connection.query("SELECT chain_hash FROM journal.entries WHERE seq = $1", [Int64(summary.firstSequence - 1)]).singleRow(),
            Data(try before.bytes("chain_hash")).base64EncodedString() != summary.chainBefore
        {
            problem(.online, summary.firstSequence, "the stored chain hash of entry \(summary.firstSequence - 1) is not the archive's chain_before")
        }
        return problems
    }

    /// SHA-256 of the notes of `ids`, each followed by an empty line (the `checkpoints` member's bytes).
    private static func checkpointsDigest(_ ids: ClosedRange<Int64>, on connection: isolated Connection) throws -> [UInt8] {
        var hasher = SHA256Hasher()
        var decoder = BinaryCopyDecoder()
        try connection.copyOutGathered(
            "COPY (SELECT note FROM journal.checkpoints WHERE id BETWEEN \(ids.lowerBound) AND \(ids.upperBound) ORDER BY id) TO STDOUT (FORMAT binary)",
            bufferBytes: 1 << 20
        ) { buffer in
            try decoder.forEachRow(in: buffer) { row in
                hasher.update(row.bytes(0) ?? [])
                hasher.update([UInt8(0x0A)])
            }
        }
        return hasher.finalize()
    }

    /// Each tile of the archive against the database's tile of the same place.
    private static func tileProblems(_ summary: MonthSummary, _ facts: OnlineFacts, on connection: isolated Connection) throws -> [ArchiveProblem] {
        var problems: [ArchiveProblem] = []
        let reader = DatabaseTreeReader(connection: connection)
        let size = summary.covering.size
        var level = 0
        while size >> UInt64(8 * level) > 0 {
            let nodes = size >> UInt64(8 * level)
            let fullCount = nodes >> 8
            var index = summary.firstSequence >> UInt64(8 * (level + 1))
            while index < fullCount {
                let batch = index..<min(fullCount, index + 1000)
                var stored: [UInt64: [UInt8]] = [:]
                for tile in try JournalDatabase.fullTiles(level: level, indices: batch, on: connection) { stored[tile.index] = SHA256.hash(tile.hashes) }
                for position in batch {
                    let path = JournalFormats.tilePath(level: level, index: position).dropFirst(5).description
                    if stored[position] == nil || stored[position] != facts.tileDigests[path] {
                        problems.append(ArchiveProblem(code: .online, sequence: position << UInt64(8 * (level + 1)), message: "hash tile \(path) differs from the database's"))
                    }
                }
                index = batch.upperBound
            }
            let width = Int(nodes & 0xFF)
            if width > 0 {
                let path = JournalFormats.tilePath(level: level, index: fullCount, partialWidth: width).dropFirst(5).description
                let hashes = try? reader.hashes(level: level, range: (fullCount << 8)..<(fullCount << 8) + UInt64(width))
                if hashes.map({ SHA256.hash($0.flatMap { $0 }) }) != facts.tileDigests[path] {
                    problems.append(ArchiveProblem(code: .online, sequence: fullCount << UInt64(8 * (level + 1)), message: "hash tile \(path) differs from the database's tree"))
                }
            }
            level += 1
        }
        return problems
    }
}
