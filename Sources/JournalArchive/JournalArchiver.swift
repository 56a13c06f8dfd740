public import Age
import Archive
import Foundation
public import Journal
public import Logging
public import Store

/// A month of the journal as `osmosectl journal archive list` shows it.
public struct JournalMonthStatus: Sendable, Codable {
    /// Where a month stands.
    public enum State: String, Sendable, Codable {
        /// Its partition exists but holds no entry (created ahead by osmose-journald).
        case empty
        /// Entries are still being sequenced into it (the journal has not moved past it).
        case current
        /// Its entries are in the database only.
        case online
        /// Its entries are in the database and in a verified cold archive.
        case archived
        /// Its entries are only in the cold archive; its tiles and checkpoints stay online.
        case purged
        /// Its archive was destroyed at the end of its term; only its tiles and checkpoints remain.
        case destroyed
    }

    /// The month.
    public let month: JournalMonth
    /// Where it stands.
    public let state: State
    /// Its first and last sequence numbers (from the database, or from its archive's record once purged).
    public let firstSequence: UInt64?
    public let lastSequence: UInt64?
    /// Its recorded archive, if any.
    public let archive: ArchiveRecord?

    /// The number of entries (the sequence numbers it spans).
    public var entryCount: UInt64 { firstSequence.flatMap { first in lastSequence.map { $0 - first + 1 } } ?? 0 }
}

/// What writing a month's archive did, or would do (`dryRun`).
public struct ArchiveWriteReceipt: Sendable, Codable {
    /// The month.
    public let month: JournalMonth
    /// True when nothing was written: this says what would be.
    public let dryRun: Bool
    /// True when a verified archive was already recorded with intact copies: nothing was written.
    public let alreadyArchived: Bool
    /// The entries archived.
    public let firstSequence: UInt64
    public let lastSequence: UInt64
    /// The covering checkpoint and how many checkpoints the archive holds.
    public let coveringCheckpoint: Int64
    public let checkpointCount: Int64
    /// The file name, and its copies (one per archive directory).
    public let fileName: String
    public let copies: [String]
    /// The archive's SHA-256 (hex), size and manifest's SHA-256 (nil in a dry run).
    public let archiveSHA256: String?
    public let archiveBytes: Int64?
    public let manifestSHA256: String?
    /// The read-back verification of the archive just written (nil when nothing was written).
    public let verification: ArchiveVerification?

    /// The number of entries.
    public var entryCount: UInt64 { lastSequence - firstSequence + 1 }
}

/// What purging a month did, or would do (`dryRun`).
public struct PurgeReceipt: Sendable, Codable {
    /// The month.
    public let month: JournalMonth
    /// True when nothing was removed: this says what would be.
    public let dryRun: Bool
    /// True when the month was purged earlier: nothing was done now.
    public let alreadyPurged: Bool
    /// The entries removed (or to remove).
    public let firstSequence: UInt64
    public let lastSequence: UInt64
    /// How many entries the partition held when it was dropped (nil in a dry run).
    public let removed: UInt64?
    /// The archive that holds them, and its copies, each read back identical just before.
    public let fileName: String
    public let archiveSHA256: String
    public let copies: [String]
}

/// What destroying a month's archive at the end of its term did, or would do (`dryRun`).
public struct ArchiveDestructionReceipt: Sendable, Codable {
    /// The month.
    public let month: JournalMonth
    /// True when nothing was removed: this says what would be.
    public let dryRun: Bool
    /// True when it was destroyed earlier: nothing was done now.
    public let alreadyDestroyed: Bool
    /// The archive's file name and SHA-256 (journaled with the destruction).
    public let fileName: String
    public let archiveSHA256: String
    /// The copies removed (or to remove).
    public let copies: [String]
    /// When the archive's term ended (microseconds since the Unix epoch).
    public let termEnded: Int64
}

/// The cold archives of journal months (docs/retention.md): lists the months, writes
/// a month's archive to every archive directory and reads each copy back, purges a
/// month whose verified archive is recorded, destroys an archive past its term.
/// Every destructive step has a dry run, is crash-safe (a rerun after a kill at any
/// moment ends in the same state) and is journaled (action `retention-admin`).
///
/// `osmosectl journal archive …` and the retention plan's apply step call it.
public struct JournalArchiver: Sendable {
    /// The archive directories (cold storage mounts): every archive is copied to each.
    public let directories: [String]
    /// The age recipients archives are encrypted to (public keys only).
    public let recipients: [any AgePublicRecipient]
    /// The log's verifier keys, to check the checkpoints an archive holds.
    public let verifierKeys: [NoteVerifierKey]
    /// Who acts, as journaled.
    public let actor: SystemActor
    /// Where progress is logged.
    public let logger: Logger

    /// An archiver.
    /// - Parameters:
    ///   - directories: the archive directories (absolute paths of existing directories; needed to write).
    ///   - recipients: the age recipients (needed to write; all classic or all post-quantum).
    ///   - verifierKeys: the log's verifier keys (needed to write and verify).
    ///   - actor: who acts (`.operator(…, role: .sysadmin)` from osmosectl, `.daemon(.retentiond)`).
    ///   - logger: where progress is logged.
    public init(directories: [String], recipients: [any AgePublicRecipient], verifierKeys: [NoteVerifierKey], actor: SystemActor, logger: Logger) {
        self.directories = directories
        self.recipients = recipients
        self.verifierKeys = verifierKeys
        self.actor = actor
        self.logger = logger
    }

    // MARK: list

    /// Every month the database knows (a partition or an archive record), oldest first.
    /// - Throws: ``StoreError`` from the database.
    public func months(on connection: Connection) async throws -> [JournalMonthStatus] {
        try await connection.transaction(isolation: .repeatableRead) { connection in
            let records = Dictionary(uniqueKeysWithValues: try MonthCatalogue.records(on: connection).map { ($0.month, $0) })
            let partitions = try MonthCatalogue.partitionedMonths(on: connection)
            let moved = try MonthCatalogue.lastSequencedAt(on: connection) ?? Int64.min
            return try Set(partitions).union(records.keys).sorted().map { month in
                let record = records[month]
                if let record, record.purgedAt != nil {
                    return JournalMonthStatus(
                        month: month, state: record.destroyedAt == nil ? .purged : .destroyed, firstSequence: record.firstSequence,
                        lastSequence: record.lastSequence, archive: record)
                }
                guard let bounds = try MonthCatalogue.bounds(of: month, on: connection) else {
                    return JournalMonthStatus(month: month, state: .empty, firstSequence: nil, lastSequence: nil, archive: record)
                }
                let state: JournalMonthStatus.State = record != nil ? .archived : (moved < month.end ? .current : .online)
                return JournalMonthStatus(month: month, state: state, firstSequence: bounds.first, lastSequence: bounds.last, archive: record)
            }
        }
    }

    // MARK: write

    /// Writes `month`'s cold archive into every archive directory in one stream, reads
    /// the first file back and verifies it whole as it is written (with a key made for
    /// that and then forgotten), reads every other copy back once synced, then
    /// records it and journals it. A month whose verified archive is recorded with intact copies is
    /// left as it is (a rerun); leftovers of an interrupted run are replaced.
    /// - Parameters:
    ///   - month: a month that is over, whose last entry a checkpoint covers.
    ///   - dryRun: check and say what would be written, write nothing.
    ///   - connection: the database (the retention role, or the schema owner).
    /// - Returns: what was written and its read-back verification.
    /// - Throws: ``JournalArchiveError``: `.invalidArgument` (no directory, a missing
    ///   directory, no recipient, no verifier key), `.notOnline`, `.notReady`,
    ///   `.inconsistent`, `.verification` (the written archive did not verify; it was
    ///   removed), `.file`, `.refused`; ``StoreError`` from the database.
    public func write(_ month: JournalMonth, dryRun: Bool = false, on connection: Connection) async throws -> ArchiveWriteReceipt {
        try checkWriteSettings()
        let (record, content) = try await connection.transaction(isolation: .repeatableRead) { connection in
            let record = try MonthCatalogue.record(of: month, on: connection)
            return (record, record?.purgedAt == nil ? try MonthCatalogue.content(of: month, on: connection) : nil)
        }
        if let record, try await copiesIntact(record) {
            return ArchiveWriteReceipt(
                month: month, dryRun: dryRun, alreadyArchived: true, firstSequence: record.firstSequence, lastSequence: record.lastSequence,
                coveringCheckpoint: record.coveringCheckpoint, checkpointCount: record.checkpointCount, fileName: record.fileName,
                copies: record.copyPaths, archiveSHA256: record.archiveSHA256, archiveBytes: record.archiveBytes, manifestSHA256: record.manifestSHA256,
                verification: nil)
        }
        guard let content else {
            throw JournalArchiveError(.notArchived, "\(month) is purged, but copies of its archive are missing or damaged: restore them from another copy")
        }
        let origin = try Checkpoint(text: SignedNote.text(of: content.covering.note)).origin
        let fileName = ArchiveLayout.fileName(origin: origin, month: month)
        let paths = directories.map { $0 + "/" + fileName }
        guard !dryRun else {
            return ArchiveWriteReceipt(
                month: month, dryRun: true, alreadyArchived: false, firstSequence: content.firstSequence, lastSequence: content.lastSequence,
                coveringCheckpoint: content.covering.id, checkpointCount: content.checkpointCount, fileName: fileName, copies: paths,
                archiveSHA256: nil, archiveBytes: nil, manifestSHA256: nil, verification: nil)
        }
        if record != nil { logger.warning("the recorded archive's copies are not all intact: writing it again", metadata: ["osmose.journal.month": "\(month)"]) }
        // Files of that name are leftovers of an interrupted run (never recorded) or
        // the damaged copies of a month still online: replaced.
        try await onOwnThread { [paths] in for path in paths { try ArchiveFiles.remove(path) } }
        let written: (archive: WrittenArchive, verification: ArchiveVerification)
        do {
            written = try await writeAndVerify(month, to: paths[0], copies: Array(paths.dropFirst()), connection: connection)
            try await readBack(copies: Array(paths.dropFirst()), of: written.archive, month: month)
        } catch {
            // Nothing was recorded: no file of this run stays, under its name or a temporary one.
            _ = try? await onOwnThread { for path in paths { try? ArchiveFiles.remove(path) } }
            throw error
        }
        let archive = written.archive
        let retirements = written.verification.signingKeyRetirements
        let fingerprints = recipients.map(\.fingerprint)
        let directories = self.directories
        let event = AccessEvent.system(
            by: actor, action: .retentionAdmin, objectType: ArchiveEvents.objectType, objectID: month.description,
            reason: "\(ArchiveEvents.archivedPrefix) entries \(content.firstSequence)…\(content.lastSequence) to \(archive.fileName) sha256 \(archive.sha256) in \(directories.count) directories")
        try await connection.transaction { connection in
            try MonthCatalogue.recordArchive(archive, copies: directories, recipients: fingerprints, retirements: retirements, on: connection)
            try connection.record(event)
        }
        logger.notice(
            "journal month archived", metadata: ["osmose.journal.month": "\(month)", "osmose.archive.sha256": "\(archive.sha256)", "osmose.archive.bytes": "\(archive.bytes)"])
        return ArchiveWriteReceipt(
            month: month, dryRun: false, alreadyArchived: false, firstSequence: content.firstSequence, lastSequence: content.lastSequence,
            coveringCheckpoint: archive.summary.covering.id, checkpointCount: archive.summary.checkpointCount, fileName: archive.fileName, copies: paths,
            archiveSHA256: archive.sha256, archiveBytes: archive.bytes, manifestSHA256: archive.manifestSHA256, verification: written.verification)
    }

    /// Writes the archive in one snapshot and verifies it whole as it is written: a
    /// second thread reads the file back as it grows (``GrowingFile``) and replays
    /// it, so the read-back overlaps the writing. It decrypts with a read-back
    /// identity added to the recipients for that purpose only (made now, kept in
    /// memory, never stored): the host needs no private key to check what it wrote.
    /// The file passes when the replay found no problem and every byte read back,
    /// to the file's end, hashes to what the writer wrote.
    private func writeAndVerify(_ month: JournalMonth, to path: String, copies: [String], connection: Connection) async throws
        -> (archive: WrittenArchive, verification: ArchiveVerification)
    {
        let readBack: any AgeUnwrapping
        let readBackRecipient: any AgePublicRecipient
        if recipients.first?.isPostQuantum == true {
            let identity = try AgeHybridIdentity.generate()
            (readBack, readBackRecipient) = (identity, identity.recipient)
        } else {
            let identity = try AgeIdentity.generate()
            (readBack, readBackRecipient) = (identity, identity.recipient)
        }
        let recipients = self.recipients + [readBackRecipient]
        let writtenBy = actor.name
        let keys = verifierKeys
        let growing = GrowingFile(path: path)
        async let reading = onOwnThread { try JournalArchiveVerifier(keys: keys, signatures: .covering).verify(growing: growing, identities: [readBack]) }
        let archive: WrittenArchive
        do {
            archive = try await connection.transaction(isolation: .repeatableRead) { connection in
                let content = try MonthCatalogue.content(of: month, on: connection)
                return try MonthArchiveWriter.write(content, to: path, recipients: recipients, writtenBy: writtenBy, now: Self.now(), readAlong: growing, copies: copies, on: connection)
            }
        } catch {
            growing.failed("\(error)")
            let verification = try? await reading
            // The read-back gave up first: its problem is why the writer stopped.
            if growing.readerStoppedFirst, let problem = verification?.problems.first {
                throw JournalArchiveError(.verification, "the archive of \(month) did not verify as it was read back (\(problem)); it was removed and nothing was recorded")
            }
            throw error
        }
        let verification = try await reading
        logger.info("archive written and read back", metadata: ["osmose.journal.month": "\(month)", "osmose.archive.bytes": "\(archive.bytes)"])
        guard verification.passed, verification.fileSHA256 == archive.sha256, verification.fileBytes == archive.bytes,
            verification.manifestSHA256 == archive.manifestSHA256
        else {
            let first = verification.problems.first.map(\.description) ?? "the file read back differs from what was written"
            throw JournalArchiveError(.verification, "the archive of \(month) did not verify when read back (\(first)); it was removed and nothing was recorded")
        }
        return (archive, verification)
    }

    /// Reads every other copy back, once all are synced and renamed: each must be, byte
    /// for byte, the file verified (its SHA-256).
    /// - Throws: ``JournalArchiveError`` `.file` naming the first copy that differs or cannot be read.
    private func readBack(copies: [String], of archive: WrittenArchive, month: JournalMonth) async throws {
        let digests = try await onOwnThread { try ArchiveFiles.digests(copies) }
        for (copy, digest) in zip(copies, digests) where digest != archive.sha256 {
            throw JournalArchiveError(
                .file, "\(copy) does not read back identical to the archive written and verified: every copy was removed and nothing was recorded")
        }
        for copy in copies { logger.info("archive copy read back", metadata: ["osmose.journal.month": "\(month)", "osmose.archive.path": "\(copy)"]) }
    }

    /// True when every recorded copy reads back with the recorded SHA-256.
    private func copiesIntact(_ record: ArchiveRecord) async throws -> Bool {
        let paths = record.copyPaths
        let expected = record.archiveSHA256
        return try await onOwnThread { try ArchiveFiles.digests(paths).allSatisfy { $0 == expected } }
    }

    /// Checks what writing an archive needs, before anything is read or written:
    /// at least one archive directory, each an existing writable directory (a
    /// missing mount is never created), none listed twice; at least one recipient,
    /// all of one kind; a verifier key of the log.
    /// - Throws: ``JournalArchiveError`` `.invalidArgument` naming the setting or the directory.
    public func checkWriteSettings() throws {
        guard !directories.isEmpty else { throw JournalArchiveError(.invalidArgument, "no archive directory is configured (archives.directories)") }
        for directory in directories { try ArchiveFiles.checkDirectory(directory) }
        guard Set(directories).count == directories.count else { throw JournalArchiveError(.invalidArgument, "an archive directory is listed twice") }
        guard !recipients.isEmpty else { throw JournalArchiveError(.invalidArgument, "no archive recipient is configured (archives.recipients): nothing to encrypt to") }
        let postQuantum = recipients.filter(\.isPostQuantum).count
        guard postQuantum == 0 || postQuantum == recipients.count else {
            throw JournalArchiveError(.invalidArgument, "archives.recipients mixes hybrid post-quantum and classic recipients: one archive cannot be encrypted to both kinds")
        }
        guard !verifierKeys.isEmpty else { throw JournalArchiveError(.invalidArgument, "no verifier key of the log: set journal.verifier_keys") }
    }

    // MARK: purge

    /// Removes `month`'s entries from the database: only when its verified archive is
    /// recorded and every recorded copy reads back with the recorded SHA-256 right
    /// now; through `journal.purge_month`, which checks the record against the
    /// partition and the tiles again, in the same transaction as the journal event.
    /// A month already purged is left as it is (a rerun).
    /// - Throws: ``JournalArchiveError`` `.notArchived` (no record, or a copy missing
    ///   or different), `.refused` (the database's own checks); ``StoreError``.
    public func purge(_ month: JournalMonth, dryRun: Bool = false, on connection: Connection) async throws -> PurgeReceipt {
        let (record, tilesReady) = try await connection.transaction(isolation: .repeatableRead) { connection in
            let record = try MonthCatalogue.record(of: month, on: connection)
            return (record, try record.map { try MonthCatalogue.levelZeroTilesStored(over: $0, on: connection) } ?? false)
        }
        guard let record else {
            throw JournalArchiveError(.notArchived, "\(month) has no verified archive recorded: write it first (osmosectl journal archive write \(month))")
        }
        func receipt(dryRun: Bool, already: Bool, removed: UInt64?) -> PurgeReceipt {
            PurgeReceipt(
                month: month, dryRun: dryRun, alreadyPurged: already, firstSequence: record.firstSequence, lastSequence: record.lastSequence,
                removed: removed, fileName: record.fileName, archiveSHA256: record.archiveSHA256, copies: record.copyPaths)
        }
        if record.purgedAt != nil { return receipt(dryRun: dryRun, already: true, removed: record.purgedEntries) }
        let paths = record.copyPaths
        let digests = try await onOwnThread { try ArchiveFiles.digests(paths) }
        for (path, digest) in zip(paths, digests) {
            guard digest == record.archiveSHA256 else {
                throw JournalArchiveError(
                    .notArchived,
                    "the archive copy \(path) is \(digest == nil ? "missing" : "not the archive recorded"): nothing was purged; write the archive again (osmosectl journal archive write \(month))")
            }
        }
        guard tilesReady else {
            throw JournalArchiveError(
                .notReady, "the hash tiles over \(month) are not all stored yet (the journal must grow past the tile holding entry \(record.lastSequence)): retry later")
        }
        if dryRun { return receipt(dryRun: true, already: false, removed: nil) }
        let event = AccessEvent.system(
            by: actor, action: .retentionAdmin, objectType: ArchiveEvents.objectType, objectID: month.description,
            reason: "\(ArchiveEvents.purgedPrefix) entries \(record.firstSequence)…\(record.lastSequence); archive \(record.fileName) sha256 \(record.archiveSHA256)")
        let sha256 = record.archiveSHA256
        let removed = try await connection.transaction { connection in
            let removed = try MonthCatalogue.purge(month, archiveSHA256: sha256, on: connection)
            try connection.record(event)
            return removed
        }
        logger.notice("journal month purged", metadata: ["osmose.journal.month": "\(month)", "osmose.journal.removed": "\(removed)"])
        return receipt(dryRun: false, already: false, removed: removed)
    }

    // MARK: destroy

    /// Destroys the archive of a purged `month` whose term has ended (`archiveYears`
    /// after the month's end, at `now`): removes every recorded copy, then records and
    /// journals the destruction with the archive's digest. Legal holds are the
    /// caller's to honour (the retention plan never asks for a held month).
    /// - Throws: ``JournalArchiveError`` `.notArchived` (no record), `.notDue` (the
    ///   month is still online, or the term has not ended), `.file`; ``StoreError``.
    public func destroy(_ month: JournalMonth, archiveYears: Int, now: Int64, dryRun: Bool = false, on connection: Connection) async throws
        -> ArchiveDestructionReceipt
    {
        guard archiveYears >= 1 else { throw JournalArchiveError(.invalidArgument, "an archive is kept at least one year (archive_years)") }
        guard let record = try await connection.transaction(isolation: .repeatableRead, { try MonthCatalogue.record(of: month, on: $0) }) else {
            throw JournalArchiveError(.notArchived, "\(month) has no recorded archive")
        }
        let termEnded = month.end(plusYears: archiveYears)
        let receipt = { (dryRun: Bool, already: Bool) in
            ArchiveDestructionReceipt(
                month: month, dryRun: dryRun, alreadyDestroyed: already, fileName: record.fileName, archiveSHA256: record.archiveSHA256,
                copies: record.copyPaths, termEnded: termEnded)
        }
        if record.destroyedAt != nil { return receipt(dryRun, true) }
        guard record.purgedAt != nil else {
            throw JournalArchiveError(.notDue, "\(month) is still online: its archive is destroyed only after the month was purged")
        }
        guard now >= termEnded else {
            throw JournalArchiveError(
                .notDue, "the archive of \(month) is kept until \(JournalEntry.rfc3339(microseconds: termEnded).prefix(10)) (\(archiveYears) years after the month)")
        }
        if dryRun { return receipt(true, false) }
        let paths = record.copyPaths
        try await onOwnThread { for path in paths { try ArchiveFiles.remove(path) } }
        let event = AccessEvent.system(
            by: actor, action: .retentionAdmin, objectType: ArchiveEvents.objectType, objectID: month.description,
            reason: "\(ArchiveEvents.destroyedPrefix): \(record.fileName) sha256 \(record.archiveSHA256), term ended \(JournalEntry.rfc3339(microseconds: termEnded).prefix(10))")
        let sha256 = record.archiveSHA256
        try await connection.transaction { connection in
            if try MonthCatalogue.recordDestroyed(month, archiveSHA256: sha256, on: connection) { try connection.record(event) }
        }
        logger.notice("journal month archive destroyed", metadata: ["osmose.journal.month": "\(month)", "osmose.archive.sha256": "\(sha256)"])
        return receipt(false, false)
    }

    static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_nsec) / 1000
    }
}
