public import ArgumentParser
import Age
import Backup
import DaemonRuntime
import Foundation
import Glibc
import Journal
import Settings
import Systemd

/// `osmose-backupd`: the backup daemon's entry points, run by its timers and by
/// PostgreSQL: full and incremental backups, prune, copies, and WAL archiving
/// (`archive_command`) and fetching (`restore_command`).
public struct BackupDaemon: AsyncParsableCommand {
    /// Its command line: the subcommands, `--help` with its exit statuses, `--version`.
    public static let configuration = CommandConfiguration.daemon(
        .backupd, abstract: "Encrypted backups of the Osmose suite (age format, pax tar, zstd).",
        discussion: """
            Settings: the configuration's backup: section; policies/backup.yaml for prune. Everything written to the store is \
            signed with the backup-signing keys: the backup-signing-key and backup-signing-key-… credentials, else \
            backup.signing_key_files.
            """,
        exitStatuses: [.success, .failure, .invalidConfiguration, .integrity, .keyUnavailable],
        statusDetails: [
            .success: "done",
            .failure: "failed; the message says why (PostgreSQL keeps the segment and retries wal-push)",
            .invalidConfiguration: "the configuration is invalid",
            .integrity: "the store holds a file the suite did not sign, or not what it signed (wal-fetch, wal-push); the file is named",
            .keyUnavailable: "no backup-signing key was given, or one cannot be read",
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
        abstract: "Take an incremental backup: the files changed since the previous backup, and the list of the whole tree.",
        discussion: """
            With backup.data_directory, the cluster's files changed since the previous backup are copied too \
            (between pg_backup_start and pg_backup_stop), with the list of every file: a restore to any moment \
            after this backup rebuilds the cluster from that list and replays only the WAL since this backup. \
            Without it (pg_basebackup), the cluster comes from the newest full backup and the WAL since. The \
            suite's files come from this backup's tree (files deleted since the parent do not come back). Needs \
            a full backup in the store. Prints the backup's summary as JSON.
            """)
    @OptionGroup var options: DaemonOptions

    func run() async throws { try await takeBackup(.incremental, options) }
}

/// The backup-signing keys given to this process: the credentials named
/// `backup-signing-key` or `backup-signing-key-…` (a rollover adds one), else the
/// files `backup.signing_key_files` lists (PostgreSQL's archive_command, outside
/// osmose-backupd's units).
/// - Throws: ``BackupCommandError`` `.keyUnavailable` when there is none or one cannot be read.
func loadSigner(_ backup: SuiteConfiguration.Backup) throws -> BackupSigner {
    let credentials = Credentials()
    var texts: [(source: String, text: String)] = []
    do {
        for name in credentials.names() where name == "backup-signing-key" || name.hasPrefix("backup-signing-key-") {
            texts.append(("credential \(name)", String(decoding: try credentials.load(name).exposedCopy(), as: UTF8.self)))
        }
    } catch let error as SystemdError {
        throw BackupCommandError(.keyUnavailable, error.message)
    }
    if texts.isEmpty {
        for path in backup.signingKeyFiles {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw BackupCommandError(.keyUnavailable, "cannot read the backup-signing key file \(path) (backup.signing_key_files)")
            }
            texts.append(("file \(path)", String(decoding: data, as: UTF8.self)))
        }
    }
    guard !texts.isEmpty else {
        throw BackupCommandError(
            .keyUnavailable,
            "no backup-signing key: pass the backup-signing-key credential (LoadCredentialEncrypted=backup-signing-key:…) or set backup.signing_key_files; make one with osmosectl keys rotate --purpose backup-signing")
    }
    let keys = try texts.map { source, text in
        do {
            return try NoteSignerKey(encoded: text.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            throw BackupCommandError(.keyUnavailable, "the backup-signing key in \(source) is not a signer key (osmosectl keys rotate --purpose backup-signing makes one)")
        }
    }
    return try BackupSigner(keys: keys)
}

/// The verifier keys the configuration trusts (`backup.verifier_keys`, `backup.retired_verifier_keys`).
func configuredTrust(_ backup: SuiteConfiguration.Backup, acceptUnsigned: Bool = false) throws -> BackupTrust {
    do {
        return try BackupTrust(
            verifierKeys: backup.verifierKeys, retired: backup.retiredVerifierKeys.map { ($0.key, $0.retired) }, acceptUnsigned: acceptUnsigned)
    } catch {
        throw BackupCommandError(.invalidSetting, "\(error)")
    }
}

/// Prints to standard error what the store holds that the suite did not sign: the
/// backup itself went on (the chain skips such files), but someone must look.
func warnAboutStore(_ store: String, trust: BackupTrust) {
    for failure in BackupCatalogue(store: store).audit(trust: trust).failures {
        FileHandle.standardError.write(Data("osmose-backupd: warning: the store holds what the suite did not sign: \(failure)\n".utf8))
    }
}

/// Writes the store's signed head into the head directories (backup.head_directories); false on any failure (printed).
func writeHead(_ configuration: SuiteConfiguration, signer: BackupSigner, trust: BackupTrust) -> Bool {
    let failures = StoreHead.writeHead(
        store: configuration.backup.store, signer: signer, trust: trust, into: configuration.backupHeadDirectories)
    for failure in failures { FileHandle.standardError.write(Data("osmose-backupd: the store's head: \(failure)\n".utf8)) }
    return failures.isEmpty
}

/// Takes a backup of `kind`, records it (ops.backups and the journal), writes the
/// store's head and mirrors the store to the copy locations.
func takeBackup(_ kind: BackupKind, _ options: DaemonOptions) async throws {
    let configuration = try options.loadConfiguration()
    let backup = configuration.backup
    guard !backup.recipients.isEmpty else { throw BackupCommandError(.invalidSetting, "backup.recipients is empty: nothing to encrypt to") }
    let signer = try loadSigner(backup)
    let trust = try configuredTrust(backup).adding(signer)
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
            recipients: try backup.recipients.map(AgeRecipients.parse), signer: signer, trust: trust, suiteFiles: suiteFiles,
            dataDirectory: backup.dataDirectory)
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
    warnAboutStore(backup.store, trust: trust)
    let warnings = try await BackupCommandError.wrapping(
        .failed, "backup \(summary.id) is stored and complete, but recording it in ops.backups and the journal failed"
    ) {
        try await BackupJournal.recordBackup(summary, signer: signer, store: backup.store, connectionString: configuration.backupConnection)
    }
    for warning in warnings { FileHandle.standardError.write(Data("osmose-backupd: warning: \(warning)\n".utf8)) }
    let headWritten = writeHead(configuration, signer: signer, trust: trust)
    guard mirror(backup, trust: trust, signer: signer) else {
        throw BackupCommandError(.failed, "backup \(summary.id) is stored, but a copy location is not up to date (see above)")
    }
    guard headWritten else { throw BackupCommandError(.failed, "backup \(summary.id) is stored, but the store's head could not be written (see above)") }
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
        let signer = try loadSigner(configuration.backup)
        let trust = try configuredTrust(configuration.backup).adding(signer)
        let pruner = BackupPruner(store: configuration.backup.store, policy: policy, trust: trust)
        try await BackupCommandError.wrapping(.failed, "prune") {
            let plan = try pruner.plan()
            for (id, rules) in plan.kept.sorted(by: { $0.key < $1.key }) { print("keep   \(id)  (\(rules.joined(separator: ", ")))") }
            for id in plan.removed { print("\(dryRun ? "would remove" : "remove") \(id)") }
            print("\(dryRun ? "would remove" : "remove") \(plan.walRemoved.count) WAL files older than what the oldest kept backup needs")
            guard !dryRun, !plan.removed.isEmpty || !plan.walRemoved.isEmpty else { return }
            // Journaled first: a prune that cannot be recorded does not happen.
            try await BackupJournal.recordPrune(plan, connectionString: configuration.backupConnection)
            try pruner.apply(plan, signer: signer)
            guard writeHead(configuration, signer: signer, trust: trust) else {
                throw BackupCommandError(.failed, "pruned, but the store's head could not be written (see above)")
            }
        }
        warnAboutStore(configuration.backup.store, trust: trust)
    }
}

/// Mirrors the store to every copy location (only what the suite signed travels;
/// with `signer`, each complete copy gets its signed state); prints what it did;
/// false on any failure.
func mirror(_ backup: SuiteConfiguration.Backup, trust: BackupTrust, signer: BackupSigner?, only: [String]? = nil, quiet: Bool = false) -> Bool {
    var ok = true
    for location in backup.copies {
        let report = BackupCopies(store: backup.store, trust: trust, signer: signer).mirror(to: location, only: only)
        if !quiet {
            print(
                "copy \(location): \(report.copied.count) copied and read back identical, \(report.unchanged) already identical, \(report.removed.count) removed"
                    + (report.kept.isEmpty ? "" : ", \(report.kept.count) kept that the store lacks without having pruned them"))
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
        let signer = try loadSigner(backup)
        if !mirror(backup, trust: try configuredTrust(backup).adding(signer), signer: signer) { throw ExitCode(1) }
    }
}

struct WALPush: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-push",
        abstract: "Archive one WAL segment, compressed and encrypted, durably (archive_command = 'osmose-backupd wal-push %p %f').",
        discussion: """
            Exit 0 only once the segment and its signature are synced in the store; PostgreSQL retries on any other status. \
            The backup-signing key: the backup-signing-key credential (a drop-in of PostgreSQL's unit), else backup.signing_key_files.
            """)
    @OptionGroup var options: DaemonOptions
    @Argument(help: "The segment's path (%p).") var path: String
    @Argument(help: "The segment's file name (%f).") var name: String

    func run() async throws {
        // PostgreSQL runs this with its own umask (0077 under Debian's pg_ctlcluster),
        // which would leave the segments and their signatures unreadable to the group
        // osmose-backupd verifies and prunes them through: the store's files are 0640,
        // as osmose-backupd's units (UMask=0027) write theirs.
        umask(0o027)
        let backup = try options.loadConfiguration().backup
        guard !backup.recipients.isEmpty else { throw BackupCommandError(.invalidSetting, "backup.recipients is empty: nothing to encrypt to") }
        let signer = try loadSigner(backup)
        try await BackupCommandError.wrapping(.failed, "wal-push \(name)") {
            let recipients = try backup.recipients.map(AgeRecipients.parse)
            _ = try WALArchive(store: backup.store).push(segment: path, name: name, recipients: recipients, signer: signer)
        }
        // The copies follow at once, best effort: the segment is safe in the store, and a
        // copy location that is down must not stop WAL archiving (osmose-backupd copy catches up).
        if !backup.copies.isEmpty {
            let trust = BackupTrust(keys: []).adding(signer)
            _ = mirror(backup, trust: trust, signer: nil, only: ["wal/\(name).tar.zst.age", "wal/\(name).sig", "wal/pushed.log"], quiet: true)
        }
    }
}

struct WALFetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wal-fetch",
        abstract: "Restore one WAL file from the store (restore_command = 'osmose-backupd wal-fetch %f %p').",
        discussion: """
            Checks the file's signature (backup.verifier_keys) before decrypting it, and its content against what was signed. \
            Exit 1 when the store has no such file: PostgreSQL then ends recovery there. Exit 5, naming the file, when it is \
            unsigned, signed by a key the configuration does not list, or not what was signed: nothing is written (the \
            restore_command osmosectl backup restore writes turns that into a status that aborts recovery).
            """)
    @OptionGroup var options: DaemonOptions
    @Option(help: "The age identity file (default: backup.identity_file).") var identity: String?
    @Flag(help: "Accept a file without signature (a store from before signing; osmosectl backup restore --accept-unsigned journals the decision).")
    var acceptUnsigned = false
    @Option(help: "Segments to prefetch in the background into the spool while PostgreSQL replays (0: none).") var prefetch = 8
    @Option(help: "The prefetch spool (default: osmose-prefetch beside the destination, inside pg_wal).") var spool: String?
    @Flag(help: .hidden) var prefetchWorker = false
    @Argument(help: "The file name PostgreSQL wants (%f).") var name: String
    @Argument(help: "Where to write it (%p).") var path: String

    func run() async throws {
        let backup = try options.loadConfiguration().backup
        // What the signatures are checked with comes first: nothing is decrypted unchecked.
        let trust = try configuredTrust(backup, acceptUnsigned: acceptUnsigned)
        guard !trust.keys.isEmpty || acceptUnsigned else {
            throw BackupCommandError(.invalidSetting, "backup.verifier_keys is empty: list the backup-signing verifier keys (osmosectl keys status)")
        }
        guard let file = identity ?? backup.identityFile, let text = FileManager.default.contents(atPath: file) else {
            throw BackupCommandError(.invalidSetting, "no identity to decrypt with: pass --identity or set backup.identity_file")
        }
        let spoolPath = spool ?? WALPrefetch.defaultSpool(for: path)
        let prefetcher = WALPrefetch(store: backup.store, spool: spoolPath)
        // The default spool is pg_wal/osmose-prefetch: the data directory two levels up tells when recovery ends.
        let dataDirectory = spool == nil ? ((spoolPath as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent : nil
        if prefetchWorker {
            _ = try await BackupCommandError.wrapping(.failed, "wal-fetch prefetching after \(name)") {
                let identities = try AgeIdentities.parseFile(String(decoding: text, as: UTF8.self))
                return try prefetcher.run(after: name, count: prefetch, identities: identities, trust: trust, dataDirectory: dataDirectory)
            }
            return
        }
        let found = try await BackupCommandError.wrapping(.failed, "wal-fetch \(name)") {
            if prefetch > 0, prefetcher.take(name, to: path, trust: trust) { return true }
            let identities = try AgeIdentities.parseFile(String(decoding: text, as: UTF8.self))
            return try WALArchive(store: backup.store).fetch(name: name, to: path, identities: identities, trust: trust)
        }
        // Not in the store: PostgreSQL asks for files that may not exist (the next timeline's history).
        guard found else { throw ExitCode(1) }
        // Only during a recovery (a wal-fetch run by hand has nothing to prefetch for).
        if prefetch > 0, WALPrefetch.recovering(dataDirectory), !prefetcher.isLocked(), !prefetcher.wanted(after: name, count: prefetch).isEmpty {
            startPrefetcher()
        }
    }

    /// Starts this program again, detached (its own session, no terminal, standard
    /// streams on /dev/null), as the prefetcher of the segments after `name`:
    /// PostgreSQL waits only for this process, not for it.
    private func startPrefetcher() {
        var arguments = ["osmose-backupd", "wal-fetch", "--prefetch-worker", "--prefetch", String(prefetch)]
        if let configuration = options.config { arguments += ["--config", configuration] }
        if let identity { arguments += ["--identity", identity] }
        if let spool { arguments += ["--spool", spool] }
        if acceptUnsigned { arguments.append("--accept-unsigned") }
        arguments += [name, path]
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // POSIX_SPAWN_SETSID (0x80 in glibc's spawn.h, visible to C only with _GNU_SOURCE): a session of its own.
        posix_spawnattr_setflags(&attributes, 0x80)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for descriptor: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", descriptor == 0 ? O_RDONLY : O_WRONLY, 0) }
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        // Best effort: without a prefetcher every segment is fetched from the store, as before.
        _ = posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, argv, environ)
    }
}
