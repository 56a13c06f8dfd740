import Archive
import Foundation
import Journal

/// What a store held at a moment, signed: the newest backup and the newest WAL
/// segment. A store rolled back to an older state (every file authentic, but newer
/// ones gone) passes every signature check; it is caught by comparing it with a
/// state signed earlier and kept where the backup host cannot reach:
///
/// - the **head**, `backup-head.sig`, rewritten by `osmose-backupd` after every full,
///   incremental backup and prune in each of the journal's witness directories
///   (`backup.head_directories`, by default `journal.witness_directories`: outside the database and the backup store);
/// - each copy location's **state**, `copy-state.sig`, written into the location
///   after a complete mirror, so that a copy used as the store in a disaster is
///   checked against what it held.
///
/// WAL pushed after the newest head is not covered until the next backup (the
/// window is the backup schedule's: a day with nightly incrementals).
public enum StoreHead {
    /// The head's file name in each witness directory.
    public static let headFileName = "backup-head.sig"
    /// A copy location's state file.
    public static let copyStateFileName = "copy-state.sig"

    /// The statement of what `store` holds now: its newest trusted backup and newest signed WAL segment.
    static func statement(kind: BackupStatement.Kind, store: String, trust: BackupTrust, extra: [(key: String, value: String)] = []) throws -> BackupStatement {
        let audit = BackupCatalogue(store: store).audit(trust: trust)
        let archive = WALArchive(store: store)
        let signed = Set(archive.signedNames())
        let newestWAL = try archive.names().filter { $0.count == 24 && signed.contains($0) }.reversed().first { name in
            (try? archive.authenticate(name, trust: trust)) != nil
        }
        return try BackupStatement(
            kind: kind, subject: kind == .head ? "store" : "copy",
            fields: extra + [
                ("newest-backup", audit.trusted.last?.id ?? "-"), ("backups", "\(audit.trusted.count)"), ("newest-wal", newestWAL ?? "-"),
                ("signed", SignatureTime.format(Date())),
            ])
    }

    /// Writes the signed head of `store` into each of `directories`.
    /// - Returns: one line per directory that could not be written.
    public static func writeHead(store: String, signer: BackupSigner, trust: BackupTrust, into directories: [String]) -> [String] {
        guard !directories.isEmpty else { return [] }
        let statement: BackupStatement
        do {
            statement = try Self.statement(kind: .head, store: store, trust: trust.adding(signer))
        } catch {
            return ["the store's head: \(error)"]
        }
        return directories.compactMap { directory in
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try signer.write(statement, to: "\(directory)/\(headFileName)")
                return nil
            } catch {
                return "\(directory)/\(headFileName): \(error)"
            }
        }
    }

    /// Writes the signed state of the copy at `location`, which mirrors `store`.
    static func writeCopyState(location: String, store: String, signer: BackupSigner, trust: BackupTrust) throws {
        let statement = try Self.statement(kind: .copyState, store: store, trust: trust.adding(signer), extra: [("location", location)])
        try signer.write(statement, to: "\(location)/\(copyStateFileName)")
    }

    /// What the heads and the store's own copy state say, compared with the store.
    public struct Check: Sendable {
        /// Where the store holds less than a signed state says it held.
        public var failures: [BackupIntegrityError] = []
        /// What was compared, or could not be (for the report).
        public var notes: [String] = []
    }

    /// Compares `store` with the heads in `directories` and with its own
    /// `copy-state.sig` when it is a copy: the newest backup each names must be in the
    /// store (or pruned, with a tombstone), and its newest WAL segment too.
    public static func check(store: String, audit: CatalogueAudit, trust: BackupTrust, directories: [String]) -> Check {
        var check = Check()
        let walNames = Set((try? WALArchive(store: store).names()) ?? [])
        var files = directories.map { ("\($0)/\(headFileName)", BackupStatement.Kind.head, "store") }
        if FileManager.default.fileExists(atPath: "\(store)/\(copyStateFileName)") { files.append(("\(store)/\(copyStateFileName)", .copyState, "copy")) }
        if directories.isEmpty { check.notes.append("no head directory is configured (backup.head_directories, else journal.witness_directories): a rollback of the whole store cannot be detected") }
        for (path, kind, subject) in files {
            guard let note = FileManager.default.contents(atPath: path) else {
                check.notes.append("\(path) is absent (no backup since signing began, or the directory is not reachable): not compared")
                continue
            }
            do {
                let statement = try trust.authenticate(String(decoding: note, as: UTF8.self), file: path, kind: kind, subject: subject).statement
                let when = statement.value("signed") ?? "?"
                if let newest = statement.value("newest-backup"), !audit.usable.contains(newest), !audit.pruned.contains(where: { $0.id == newest }) {
                    throw BackupIntegrityError(
                        .rolledBack, path,
                        "names backup \(newest) as the store's newest (signed \(when)), which the store neither holds nor records as pruned: the store was rolled back to an older state, or that backup removed")
                }
                if let wal = statement.value("newest-wal"), !walNames.contains(wal) {
                    throw BackupIntegrityError(
                        .rolledBack, path, "names WAL segment \(wal) as archived (signed \(when)), which the store lacks: the store's WAL was rolled back or removed")
                }
                check.notes.append("\(path): the store holds at least what it names (signed \(when))")
            } catch let error as BackupIntegrityError {
                check.failures.append(error)
            } catch {
                check.failures.append(BackupIntegrityError(.badSignature, path, "\(error)"))
            }
        }
        return check
    }
}
