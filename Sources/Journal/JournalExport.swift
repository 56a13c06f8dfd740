public import Foundation
public import Store

/// An export of the journal entries in `range` (inclusive) for an investigation:
/// a C2SP entry bundle with the checkpoints that cover it and one inclusion proof
/// per entry, or a FHIR R4 Bundle of AuditEvents. The entries (with their
/// checkpoints and proofs) are read in one snapshot; the export is then journaled,
/// by `exporter` with the audit purpose, before anything is handed out.
public struct JournalExport: Sendable {
    /// At most this many entries per export.
    public static let maximumCount: UInt64 = 10_000_000

    /// The first and last sequence numbers exported.
    public let range: ClosedRange<UInt64>
    /// Who exports, as journaled.
    public let exporter: SystemActor

    /// An export of `range` by `exporter` (for `osmosectl`, the security officer:
    /// `.operator(identity, role: .securityOfficer)`).
    public init(range: ClosedRange<UInt64>, exportedBy exporter: SystemActor) {
        self.range = range
        self.exporter = exporter
    }

    /// Writes the bundle into `directory` (created if needed): `entries` (the entry
    /// bundle), `checkpoint` (the first checkpoint covering the last entry),
    /// `checkpoints` (every checkpoint from the one before the first entry to that
    /// one) and `proofs` (one c2sp.org/tlog-proof@v1 per entry, separated by a line `--`).
    /// - Returns: what was written.
    /// - Throws: ``JournalError`` `.notFound` when an entry is missing or the last one
    ///   is not covered by a checkpoint yet, `.invalidArgument` when a file cannot be
    ///   written; ``StoreError`` from the database.
    public func writeBundle(into directory: String, on connection: Connection) async throws -> JournalExportSummary {
        let range = self.range
        let contents = try await connection.transaction(isolation: .repeatableRead) { connection in
            let entries = try Self.entries(range, on: connection)
            guard let covering = try JournalDatabase.firstCheckpoint(covering: range.upperBound, on: connection) else {
                throw JournalError(.notFound, "entry \(range.upperBound) is not covered by a checkpoint yet; retry in a few seconds")
            }
            let before = try JournalDatabase.lastCheckpointID(sizeAtMost: range.lowerBound, on: connection) ?? 1
            let checkpoints = try JournalDatabase.checkpoints(ids: min(before, covering.id)...covering.id, on: connection)
            let proofs = try Self.inclusionProofs(of: entries, covering: covering, on: connection)
            return BundleContents(entries: entries, covering: covering, checkpoints: checkpoints, proofs: proofs)
        }
        try await journal(.bundle, on: connection)
        try ExportFile.write(JournalFormats.entryBundle(contents.entries.map(\.canonical)), to: directory + "/entries")
        try ExportFile.write(Array(contents.covering.note.utf8), to: directory + "/checkpoint")
        try ExportFile.write(Array(contents.checkpoints.map { $0.note + "\n" }.joined().utf8), to: directory + "/checkpoints")
        try ExportFile.write(Array(contents.proofs.joined(separator: "--\n").utf8), to: directory + "/proofs")
        return JournalExportSummary(entries: contents.entries.count, checkpoints: contents.checkpoints.count, covering: contents.covering)
    }

    /// The entries as a FHIR R4 Bundle of AuditEvent resources (JSON).
    /// - Parameters:
    ///   - origin: the log's origin, naming the source of each AuditEvent.
    ///   - now: the bundle's timestamp, in microseconds since the Unix epoch.
    ///   - connection: the database.
    /// - Throws: ``JournalError`` `.notFound` when an entry is missing; ``StoreError`` from the database.
    public func fhirBundle(origin: String, now: Int64, on connection: Connection) async throws -> Data {
        let range = self.range
        let entries = try await connection.transaction(isolation: .repeatableRead) { connection in try Self.entries(range, on: connection) }
        try await journal(.fhir, on: connection)
        return try JournalFormats.fhirBundle(entries.map(\.entry), origin: origin, now: now)
    }

    /// The two forms, as the journaled event's reason names them.
    private enum Format: String {
        case bundle, fhir
    }

    /// What a bundle holds, read in one snapshot.
    private struct BundleContents: Sendable {
        let entries: [StoredEntry]
        let covering: CheckpointRecord
        let checkpoints: [CheckpointRecord]
        let proofs: [String]
    }

    /// Every entry of `range`.
    /// - Throws: ``JournalError`` `.notFound` when one is missing.
    private static func entries(_ range: ClosedRange<UInt64>, on connection: isolated Connection) throws -> [StoredEntry] {
        let entries = try JournalDatabase.entries(range.lowerBound..<range.upperBound + 1, on: connection)
        guard entries.count == range.count else {
            throw JournalError(
                .notFound, "entries \(range.lowerBound)…\(range.upperBound) are not all in the journal (it has \(entries.count) of them)")
        }
        return entries
    }

    /// One tlog-proof per entry against `covering`, each computed on its own from the stored tree.
    private static func inclusionProofs(of entries: [StoredEntry], covering: CheckpointRecord, on connection: isolated Connection) throws -> [String] {
        let reader = DatabaseTreeReader(connection: connection)
        return try entries.map { stored in
            JournalFormats.tlogProof(
                index: stored.entry.sequence, proof: try reader.inclusionProof(index: stored.entry.sequence, size: covering.treeSize),
                checkpointNote: covering.note)
        }
    }

    /// Journals the export, in its own transaction.
    private func journal(_ format: Format, on connection: Connection) async throws {
        let event = AccessEvent.system(
            by: exporter, action: .export, objectType: "journal", objectID: "\(range.lowerBound)-\(range.upperBound)", purpose: .audit,
            reason: "journal.export.\(format.rawValue)")
        try await connection.transaction { connection in try connection.record(event) }
    }
}

/// What ``JournalExport/writeBundle(into:on:)`` wrote.
public struct JournalExportSummary: Sendable, Hashable {
    /// How many entries.
    public let entries: Int
    /// How many checkpoints the `checkpoints` file holds.
    public let checkpoints: Int
    /// The first checkpoint covering the last entry, which every proof is against.
    public let covering: CheckpointRecord
}

/// Files of an export or a publication.
enum ExportFile {
    /// Writes `bytes` to `path`, creating its directory, replacing a file of the same name.
    /// - Throws: ``JournalError`` `.invalidArgument` naming the path.
    static func write(_ bytes: [UInt8], to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw JournalError(.invalidArgument, "cannot create the directory \(directory): \(error.localizedDescription)")
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw JournalError(.invalidArgument, "cannot write \(path)")
        }
    }
}
