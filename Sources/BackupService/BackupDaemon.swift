public import ArgumentParser
import Age
import Backup
import DaemonRuntime
import Foundation
import Settings

/// `osmose-backupd`: the backup daemon's entry points, run by its timers and by
/// PostgreSQL: full and incremental backups, prune, copies, and WAL archiving
/// (`archive_command`) and fetching (`restore_command`).
public struct BackupDaemon: AsyncParsableCommand {
    /// Its command line: the subcommands, `--help` with its exit statuses, `--version`.
    public static let configuration = CommandConfiguration.daemon(
        .backupd, abstract: "Encrypted backups of the Osmose suite (age format, pax tar, zstd).",
        discussion: "Settings: the configuration's backup: section; policies/backup.yaml for prune.",
        exitStatuses: [.success, .failure, .invalidConfiguration],
        statusDetails: [
            .success: "done",
            .failure: "failed; the message says why (PostgreSQL keeps the segment and retries wal-push)",
            .invalidConfiguration: "the configuration is invalid",
        ],
        subcommands: [Full.self, Incremental.self, Prune.self, Copy.self, WALPush.self, WALFetch.self])

    /// Creates the root command (it only dispatches to a subcommand).
    public init() {}

    /// Keeps the backup commands' megabyte buffers on the heap (see `BulkIO`); call
    /// once before running a command.
    public static func tuneAllocator() { BulkIO.tuneAllocator() }
}

struct Full: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take a full backup: the cluster (pg_basebackup, streamed) and the suite's files, encrypted to backup.recipients.",
        discussion: "Waits until the WAL the base needs is archived, so that a listed backup is always restorable. Prints the backup's summary as JSON.")
    @OptionGroup var options: DaemonOptions

    func run() async throws { try await takeBackup(.full, options) }
}

struct Incremental: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take an incremental backup: the suite's files changed since the previous backup, and the list of the whole tree.",
        discussion: """
            The cluster's changes are in the WAL archive already (wal-push); a restore to any moment after this \
            backup takes the cluster from the newest full backup before it and replays the WAL, and the suite's \
            files from this backup's tree (files deleted since the parent do not come back). Needs a full backup \
            in the store. Prints the backup's summary as JSON.
            """)
    @OptionGroup var options: DaemonOptions

    func run() async throws { try await takeBackup(.incremental, options) }
}

/// Takes a backup of `kind`, records it (ops.backups and the journal) and mirrors it to the copy locations.
func takeBackup(_ kind: BackupKind, _ options: DaemonOptions) async throws {
    let configuration = try options.loadConfiguration()
    let backup = configuration.backup
    guard !backup.recipients.isEmpty else { throw BackupCommandError(.invalidSetting, "backup.recipients is empty: nothing to encrypt to") }
    var suiteFiles: [(path: String, name: String)] = [(options.configurationPath(), "osmose.yaml")]
    if FileManager.default.fileExists(atPath: configuration.paths.policies) { suiteFiles.append((configuration.paths.policies, "policies")) }
    for (index, witness) in configuration.journal.witnessDirectories.enumerated() where FileManager.default.fileExists(atPath: witness) {
        suiteFiles.append((witness, "witness-\(index)"))
    }
    for (index, tree) in backup.fileTrees.enumerated() {
        guard FileManager.default.fileExists(atPath: tree) else {
            throw BackupCommandError(.invalidSetting, "backup.file_trees lists \(tree), which does not exist")
        }
        suiteFiles.append((tree, "tree-\(index)-" + ((tree as NSString).lastPathComponent.isEmpty ? "root" : (tree as NSString).lastPathComponent)))
    }
    let summary = try await BackupCommandError.wrapping(.failed, "\(kind.rawValue) backup") {
        let job = BaseBackup(
            connection: configuration.backupConnection, store: backup.store,
            recipients: try backup.recipients.map(AgeRecipients.parse), suiteFiles: suiteFiles,
            dataDirectory: kind == .full ? backup.dataDirectory : nil)
        let summary: BackupSummary
        if job.dataDirectory != nil {
            summary = try await BackupJournal.withBackupSession(connectionString: configuration.backupConnection) { session in
                try job.run(kind: kind, session: session)
            }
        } else {
            summary = try job.run(kind: kind)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        return summary
    }
    try await BackupCommandError.wrapping(
        .failed, "backup \(summary.id) is stored and complete, but recording it in ops.backups and the journal failed"
    ) {
        try await BackupJournal.recordBackup(summary, store: backup.store, connectionString: configuration.backupConnection)
    }
    guard mirror(backup) else { throw BackupCommandError(.failed, "backup \(summary.id) is stored, but a copy location is not up to date (see above)") }
}

struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove the backups policies/backup.yaml no longer keeps, and the WAL no kept backup needs.",
        discussion: "With --dry-run, lists what would go and why the rest stays; otherwise journals what it removed.")
    @OptionGroup var options: DaemonOptions
    @Flag(help: "List; remove nothing.") var dryRun = false

    func run() async throws {
        let configuration = try options.loadConfiguration()
        let policy = try await BackupCommandError.wrapping(.invalidSetting) {
            FileManager.default.fileExists(atPath: configuration.backupPolicyPath) ? try BackupPolicy.load(path: configuration.backupPolicyPath) : .defaults
        }
        let pruner = BackupPruner(store: configuration.backup.store, policy: policy)
        try await BackupCommandError.wrapping(.failed, "prune") {
            let plan = try pruner.plan()
            for (id, rules) in plan.kept.sorted(by: { $0.key < $1.key }) { print("keep   \(id)  (\(rules.joined(separator: ", ")))") }
            for id in plan.removed { print("\(dryRun ? "would remove" : "remove") \(id)") }
            print("\(dryRun ? "would remove" : "remove") \(plan.walRemoved.count) WAL files older than what the oldest kept backup needs")
            guard !dryRun, !plan.removed.isEmpty || !plan.walRemoved.isEmpty else { return }
            // Journaled first: a prune that cannot be recorded does not happen.
            try await BackupJournal.recordPrune(plan, connectionString: configuration.backupConnection)
            try pruner.apply(plan)
        }
    }
}

/// Mirrors the store to every copy location; prints what it did; false on any failure.
func mirror(_ backup: SuiteConfiguration.Backup, only: [String]? = nil, quiet: Bool = false) -> Bool {
    var ok = true
    for location in backup.copies {
        let report = BackupCopies(store: backup.store).mirror(to: location, only: only)
        if !quiet {
            print("copy \(location): \(report.copied.count) copied and read back identical, \(report.unchanged) already identical, \(report.removed.count) removed")
        }
        for failure in report.failures {
            FileHandle.standardError.write(Data("osmose-backupd: copy \(location): \(failure)\n".utf8))
            ok = false
        }
    }
    return ok
}

struct Copy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring every copy location (backup.copies) up to date with the store, verifying each file after writing.",
        discussion: "Exit 1 when a file could not be copied or did not read back identical.")
    @OptionGroup var options: DaemonOptions

    func run() async throws {
        let backup = try options.loadConfiguration().backup
        guard !backup.copies.isEmpty else { throw BackupCommandError(.invalidSetting, "backup.copies is empty: no copy location configured") }
        if !mirror(backup) { throw ExitCode(1) }
    }
}

struct WALPush: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-push",
        abstract: "Archive one WAL segment, compressed and encrypted, durably (archive_command = 'osmose-backupd wal-push %p %f').",
        discussion: "Exit 0 only once the segment is synced in the store; PostgreSQL retries on any other status.")
    @OptionGroup var options: DaemonOptions
    @Argument(help: "The segment's path (%p).") var path: String
    @Argument(help: "The segment's file name (%f).") var name: String

    func run() async throws {
        let backup = try options.loadConfiguration().backup
        guard !backup.recipients.isEmpty else { throw BackupCommandError(.invalidSetting, "backup.recipients is empty: nothing to encrypt to") }
        try await BackupCommandError.wrapping(.failed, "wal-push \(name)") {
            let recipients = try backup.recipients.map(AgeRecipients.parse)
            _ = try WALArchive(store: backup.store).push(segment: path, name: name, recipients: recipients)
        }
        // The copies follow at once, best effort: the segment is safe in the store, and a
        // copy location that is down must not stop WAL archiving (osmose-backupd copy catches up).
        _ = mirror(backup, only: ["wal/\(name).tar.zst.age", "wal/\(name).sha256", "wal/pushed.log"], quiet: true)
    }
}

struct WALFetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-fetch",
        abstract: "Restore one WAL file from the store (restore_command = 'osmose-backupd wal-fetch %f %p').",
        discussion: "Exit 1 when the store has no such file: PostgreSQL then ends recovery there.")
    @OptionGroup var options: DaemonOptions
    @Option(help: "The age identity file (default: backup.identity_file).") var identity: String?
    @Argument(help: "The file name PostgreSQL wants (%f).") var name: String
    @Argument(help: "Where to write it (%p).") var path: String

    func run() async throws {
        let backup = try options.loadConfiguration().backup
        guard let file = identity ?? backup.identityFile, let text = FileManager.default.contents(atPath: file) else {
            throw BackupCommandError(.invalidSetting, "no identity to decrypt with: pass --identity or set backup.identity_file")
        }
        let found = try await BackupCommandError.wrapping(.failed, "wal-fetch \(name)") {
            let identities = try AgeIdentities.parseFile(String(decoding: text, as: UTF8.self))
            return try WALArchive(store: backup.store).fetch(name: name, to: path, identities: identities)
        }
        // Not in the store: PostgreSQL asks for files that may not exist (the next timeline's history).
        guard found else { throw ExitCode(1) }
    }
}
