import Cryptography
public import Foundation
import Glibc
public import Store

/// An export of journal entries for an investigation — a contiguous range, or
/// scattered entries such as one patient's: a C2SP entry bundle with the
/// checkpoints that cover it and one inclusion proof per entry, or a FHIR R4 Bundle
/// of AuditEvents.
///
/// Exports stream: entries and proofs are read, built and written chunk by chunk
/// (``JournalProver``), so memory stays bounded whatever their size. Everything is
/// read in one snapshot and written to temporary files first; the export is then
/// journaled (by `exporter`, with the audit purpose), and only then are the files
/// given their names. A failed export leaves no file behind and journals nothing.
public struct JournalExport: Sendable {
    /// At most this many entries per export.
    public static let maximumCount: UInt64 = 10_000_000

    /// The entries exported.
    public let selection: EntrySelection
    /// Who exports, as journaled.
    public let exporter: SystemActor
    /// The patient the entries concern, when they were chosen as one patient's:
    /// journaled with the export, so that the patient's own access report shows it.
    public var patientID: UUID?

    /// An export of `selection` by `exporter` (for `osmosectl`, the security officer:
    /// `.operator(identity, role: .securityOfficer)`).
    public init(_ selection: EntrySelection, exportedBy exporter: SystemActor) {
        self.selection = selection
        self.exporter = exporter
    }

    /// An export of the entries `range` (both ends included) by `exporter`.
    public init(range: ClosedRange<UInt64>, exportedBy exporter: SystemActor) {
        self.init(.range(range), exportedBy: exporter)
    }

    /// Writes the bundle into `directory` (created if needed; files of the same names
    /// are replaced): `entries` (the entry bundle), `checkpoint` (the first checkpoint
    /// covering the last entry), `checkpoints` (every checkpoint from the last one
    /// before the first entry up to that one), `proofs` (one c2sp.org/tlog-proof@v1
    /// per entry against `checkpoint`, separated by a line `--`) and `consistency` (the
    /// body of a tlog-witness add-checkpoint request proving `checkpoint`'s tree a
    /// prefix of the latest checkpoint's). Files are created with mode 0600.
    /// - Parameter progress: called now and then (every 65,536 entries) with how far
    ///   the export is, from the export's threads (one at a time).
    /// - Returns: what was written.
    /// - Throws: ``JournalError`` `.notFound` when an entry is missing or the last one
    ///   is not covered by a checkpoint yet, `.invalidArgument` for an empty or too
    ///   large selection or a file that cannot be written, `.inconsistentState` when
    ///   stored bytes contradict the tree; ``StoreError`` from the database.
    public func writeBundle(
        into directory: String, on connection: Connection, progress: (@Sendable (JournalExportProgress) -> Void)? = nil
    ) async throws -> JournalExportSummary {
        try checkSize()
        let files = try ExportFiles(directory: directory, names: ["entries", "checkpoint", "checkpoints", "proofs", "consistency"])
        do {
            let selection = self.selection
            let summary = try await connection.transaction(isolation: .repeatableRead) { connection in
                try Self.writeBundle(selection, to: files, on: connection, progress: progress)
            }
            try await journal(.bundle, on: connection)
            try files.commit()
            return summary
        } catch {
            files.discard()
            throw error
        }
    }

    /// Writes the entries as a FHIR R4 Bundle (type `collection`) of AuditEvent
    /// resources (JSON, one entry a line) to the file `path` (mode 0600, replaced if
    /// it exists), or to standard output when `path` is nil.
    ///
    /// To a file, the bundle is written under a temporary name and journaled before it
    /// is given its name. To standard output, the entries are first counted (a missing
    /// one refuses the export) and the export journaled, then the bundle streams out.
    /// - Parameters:
    ///   - origin: the log's origin, naming the source of each AuditEvent.
    ///   - now: the bundle's timestamp, in microseconds since the Unix epoch.
    ///   - progress: as for ``writeBundle(into:on:progress:)``.
    /// - Returns: the number of entries written.
    /// - Throws: ``JournalError`` `.notFound` when an entry is missing,
    ///   `.invalidArgument` for an empty or too large selection or an unwritable file;
    ///   ``StoreError`` from the database.
    @discardableResult
    public func writeFHIR(
        to path: String?, origin: String, now: Int64, on connection: Connection, progress: (@Sendable (JournalExportProgress) -> Void)? = nil
    ) async throws -> Int {
        try checkSize()
        let selection = self.selection
        guard let path else {
            let stored = try await connection.transaction(isolation: .repeatableRead) { connection in
                try JournalDatabase.countEntries(selection.indices, on: connection)
            }
            guard stored == selection.count else {
                throw JournalError(.notFound, "entries \(selection) are not all in the journal (it has \(stored) of them)")
            }
            try await journal(.fhir, on: connection)
            let output = StreamingFile(descriptor: STDOUT_FILENO, path: "standard output")
            return try await connection.transaction(isolation: .repeatableRead) { connection in
                try Self.writeFHIR(selection, origin: origin, now: now, to: output, on: connection, progress: progress)
            }
        }
        let directory = (path as NSString).deletingLastPathComponent
        let files = try ExportFiles(directory: directory.isEmpty ? "." : directory, names: [(path as NSString).lastPathComponent])
        do {
            let count = try await connection.transaction(isolation: .repeatableRead) { connection in
                try Self.writeFHIR(selection, origin: origin, now: now, to: files.file(0), on: connection, progress: progress)
            }
            try files.file(0).close()
            try await journal(.fhir, on: connection)
            try files.commit()
            return count
        } catch {
            files.discard()
            throw error
        }
    }

    private func checkSize() throws {
        guard !selection.isEmpty else { throw JournalError(.invalidArgument, "no entries to export") }
        guard selection.count <= Self.maximumCount else {
            throw JournalError(.invalidArgument, "an export holds at most \(Self.maximumCount) entries; this one has \(selection.count)")
        }
    }

    /// The bundle's files, in one snapshot.
    private static func writeBundle(
        _ selection: EntrySelection, to files: ExportFiles, on connection: isolated Connection, progress: (@Sendable (JournalExportProgress) -> Void)?
    ) throws -> JournalExportSummary {
        guard let first = selection.first, let last = selection.last else { throw JournalError(.invalidArgument, "no entries to export") }
        let span = try JournalDatabase.exportCheckpoints(first: first, last: last, limit: 10_000, on: connection)
        guard let covering = span.covering, let latest = span.latest else {
            throw JournalError(.notFound, "entry \(last) is not covered by a checkpoint yet; retry in a few seconds")
        }
        let note = Array(covering.note.utf8)
        try files.file(1).append(note)

        var checkpoints = 0
        var batch = span.run
        while let end = batch.last {
            for record in batch { try files.file(2).append(Array((record.note + "\n").utf8)) }
            checkpoints += batch.count
            guard end.id < covering.id else { break }
            batch = try JournalDatabase.checkpoints(ids: (end.id + 1)...covering.id, limit: 10_000, on: connection)
        }

        let prover = JournalProver(checkpoint: covering, on: connection)
        let entriesFile = files.file(0)
        let proofsFile = files.file(3)
        var written = 0
        let total = selection.count
        try prover.provenEntries(selection) { entry in
            let length = entry.canonical.count
            try entriesFile.append { buffer in
                buffer.append(UInt8(length >> 8))
                buffer.append(UInt8(length & 0xFF))
                buffer.append(contentsOf: entry.canonical)
            }
            try proofsFile.append { buffer in
                if written > 0 { buffer.append(contentsOf: separator) }
                JournalFormats.appendTlogProof(entry.proof, checkpointNote: note, to: &buffer)
            }
            written += 1
            if written % 65_536 == 0 { progress?(JournalExportProgress(entries: written, total: total)) }
        }
        progress?(JournalExportProgress(entries: written, total: total))

        let toLatest = latest.id == covering.id ? try prover.consistencyProof(from: covering) : try JournalProver(checkpoint: latest, on: connection).consistencyProof(from: covering)
        try files.file(4).append(
            Array(JournalFormats.addCheckpointBody(oldSize: covering.treeSize, proof: toLatest.hashes, checkpointNote: latest.note).utf8))
        for index in 0..<5 { try files.file(index).close() }
        return JournalExportSummary(
            entries: written, checkpoints: checkpoints, covering: covering, latest: latest, tilesRead: prover.tilesRead)
    }

    private static let separator = Array("--\n".utf8)

    /// The FHIR bundle, streamed to `output`, in one snapshot.
    private static func writeFHIR(
        _ selection: EntrySelection, origin: String, now: Int64, to output: StreamingFile, on connection: isolated Connection,
        progress: (@Sendable (JournalExportProgress) -> Void)?
    ) throws -> Int {
        let storage = DatabaseTreeStorage(connection: connection)
        let encoder: (JournalEntry) throws -> Data = { entry in
            let element: [String: Any] = ["fullUrl": "urn:osmose:\(origin):\(entry.sequence)", "resource": JournalFormats.auditEvent(entry, origin: origin)]
            return try JSONSerialization.data(withJSONObject: element, options: [.sortedKeys, .withoutEscapingSlashes])
        }
        try output.append(Array("{\"entry\":[\n".utf8))
        var written = 0
        for chunk in selection.chunks() {
            let rows = try storage.read(StorageRequest(entries: chunk.sequences)).entries
            var row = 0
            for sequence in chunk.sequences.values {
                guard row < rows.count, rows[row].sequence == sequence else {
                    throw JournalError(.notFound, "entry \(sequence) is not in the journal's tables (never sequenced, or its month was purged)")
                }
                let json = try encoder(try JournalEntry(canonical: Array(rows[row].canonical)))
                try output.append { buffer in
                    if written > 0 { buffer.append(contentsOf: Array(",\n".utf8)) }
                    buffer.append(contentsOf: json)
                }
                row += 1
                written += 1
                if written % 65_536 == 0 { progress?(JournalExportProgress(entries: written, total: selection.count)) }
            }
        }
        let tail = "\n],\"resourceType\":\"Bundle\",\"timestamp\":\"\(JournalEntry.rfc3339(microseconds: now))\",\"total\":\(written),\"type\":\"collection\"}\n"
        try output.append(Array(tail.utf8))
        try output.flush()
        progress?(JournalExportProgress(entries: written, total: selection.count))
        return written
    }

    /// The two forms, as the journaled event's reason names them.
    private enum Format: String {
        case bundle, fhir
    }

    /// Journals the export, in its own transaction.
    private func journal(_ format: Format, on connection: Connection) async throws {
        let event = AccessEvent.system(
            by: exporter, action: .export, objectType: "journal", objectID: journaledObject, patientID: patientID, purpose: .audit,
            reason: "journal.export.\(format.rawValue)")
        // One INSERT commits by itself: no transaction around it.
        try await connection.perform { connection in try connection.record(event) }
    }

    /// The exported entries as the event names them: `A-B` for a range; for scattered
    /// entries their count, span and the first 16 hex digits of the SHA-256 of their
    /// sequence numbers (decimal, one a line), which identifies the exact set.
    var journaledObject: String {
        guard !selection.isContiguous else { return selection.description }
        var hasher = SHA256Hasher()
        for sequence in selection.sequences { hasher.update(Array("\(sequence)\n".utf8)) }
        let digest = hasher.finalize().prefix(8).map { String(format: "%02x", $0) }.joined()
        return "\(selection) #\(digest)"
    }
}

/// How far an export is.
public struct JournalExportProgress: Sendable, Hashable {
    /// Entries written so far.
    public let entries: Int
    /// Entries to write in all.
    public let total: Int
}

/// What ``JournalExport/writeBundle(into:on:progress:)`` wrote.
public struct JournalExportSummary: Sendable, Hashable {
    /// How many entries.
    public let entries: Int
    /// How many checkpoints the `checkpoints` file holds.
    public let checkpoints: Int
    /// The first checkpoint covering the last entry, which every proof is against.
    public let covering: CheckpointRecord
    /// The latest checkpoint when the export was made, which `consistency` ties `covering` to.
    public let latest: CheckpointRecord
    /// How many hash tiles were read to build the proofs.
    public let tilesRead: Int
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

/// The files of one export, written under temporary names in their directory and
/// renamed to their own names only once complete (``commit()``), or removed (``discard()``).
final class ExportFiles: Sendable {
    private let directory: String
    private let names: [String]
    private let files: [StreamingFile]

    /// Creates `names` in `directory` (created if needed) under temporary names, mode 0600.
    /// - Throws: ``JournalError`` `.invalidArgument` naming what cannot be created.
    init(directory: String, names: [String]) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw JournalError(.invalidArgument, "cannot create the directory \(directory): \(error.localizedDescription)")
        }
        self.directory = directory
        self.names = names
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var files: [StreamingFile] = []
        for name in names {
            let path = "\(directory)/.\(name).partial-\(tag)"
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                let reason = String(cString: strerror(errno))
                files.forEach { $0.remove() }
                throw JournalError(.invalidArgument, "cannot create \(path): \(reason)")
            }
            files.append(StreamingFile(descriptor: descriptor, path: path))
        }
        self.files = files
    }

    func file(_ index: Int) -> StreamingFile { files[index] }

    /// Gives every file its name (replacing a file of that name).
    /// - Throws: ``JournalError`` `.invalidArgument` when a file cannot be renamed.
    func commit() throws {
        for (file, name) in zip(files, names) {
            try file.close()
            guard rename(file.path, "\(directory)/\(name)") == 0 else {
                throw JournalError(.invalidArgument, "cannot rename \(file.path) to \(directory)/\(name): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Removes the temporary files.
    func discard() {
        files.forEach { $0.remove() }
    }
}

/// A file written through a buffer of about 1 MiB.
final class StreamingFile: @unchecked Sendable {
    // @unchecked: written by one thread at a time (the export's, while its caller
    // waits); the descriptor and buffer are never shared between threads at once.
    let path: String
    private var descriptor: Int32
    private var buffer: [UInt8] = []
    private static let flushAt = 1 << 20

    init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
        buffer.reserveCapacity(Self.flushAt + 65_536)
    }

    deinit {
        if descriptor > STDERR_FILENO { Glibc.close(descriptor) }
    }

    /// Appends `bytes`.
    func append(_ bytes: [UInt8]) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.flushAt { try flush() }
    }

    /// Lets `body` append to the buffer in place.
    func append(_ body: (inout [UInt8]) -> Void) throws {
        body(&buffer)
        if buffer.count >= Self.flushAt { try flush() }
    }

    /// Writes out what is buffered.
    /// - Throws: ``JournalError`` `.invalidArgument` naming the file.
    func flush() throws {
        var offset = 0
        while offset < buffer.count {
            let written = buffer.withUnsafeBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw JournalError(.invalidArgument, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += written
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and closes the file (standard output is only flushed).
    func close() throws {
        guard descriptor >= 0 else { return }
        try flush()
        if descriptor > STDERR_FILENO {
            guard Glibc.close(descriptor) == 0 else { throw JournalError(.invalidArgument, "cannot write \(path): \(String(cString: strerror(errno)))") }
        }
        descriptor = -1
    }

    /// Closes and deletes the file.
    func remove() {
        if descriptor > STDERR_FILENO { Glibc.close(descriptor) }
        descriptor = -1
        unlink(path)
    }
}
