import Age
import ArgumentParser
import Backup
import Foundation
import Journal
import Settings
import Glibc

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Encrypted backups: list, show, verify, restore to a point in time.",
        subcommands: [List.self, Show.self, Status.self, Verify.self, Restore.self, Drill.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The newest full and incremental backups in the catalogue, WAL archiving's lag, the last verification and drill (what osmose-console's backups page shows).")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let status = try await options.withConnection { connection in try await connection.perform { try BackupStatus.read(on: $0) } }
                if json { return try printJSON(status) }
                for (label, backup) in [("full", status.latestFull), ("incremental", status.latestIncremental)] {
                    print("latest \(label): " + (backup.map { "\($0.id), finished \($0.finishedAt), \($0.bytes) bytes" } ?? "none"))
                }
                print("retained backups: \(status.retained)")
                let archiving = status.archiving
                print(
                    "WAL: last archived \(archiving.lastArchived ?? "none"), current \(archiving.current ?? "?"), \(archiving.segmentsBehind.map(String.init) ?? "?") segments behind, \(archiving.failedCount) failures")
                for (label, outcome) in [("verification", status.lastVerification), ("drill", status.lastDrill)] {
                    print("last \(label): " + (outcome.map { "\($0.at) by \($0.by) on \($0.subject): \($0.detail)" } ?? "none journaled"))
                }
            }
        }
    }

    /// The store and, where decryption is needed, the identities.
    static func identities(_ option: String?, _ backup: SuiteConfiguration.Backup) throws -> [any AgeUnwrapping] {
        let credential = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"].map { "\($0)/backup-identity" }
        guard let file = option ?? backup.identityFile ?? credential.flatMap({ FileManager.default.fileExists(atPath: $0) ? $0 : nil }) else {
            throw ValidationError("decrypting needs an age identity: pass --identity FILE, set backup.identity_file, or pass the backup-identity credential")
        }
        guard let text = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read the identity file \(file)") }
        return try AgeIdentities.parseFile(String(decoding: text, as: UTF8.self))
    }

    /// The backup-signing verifier keys this machine's configuration trusts (never the store's).
    /// - Throws: `ExitCode` 3, with a line saying what to set, when none is listed
    ///   (and unsigned files are not accepted), or one is malformed.
    static func trust(_ backup: SuiteConfiguration.Backup, acceptUnsigned: Bool) throws -> BackupTrust {
        let trust: BackupTrust
        do {
            trust = try BackupTrust(
                verifierKeys: backup.verifierKeys, retired: backup.retiredVerifierKeys.map { ($0.key, $0.retired) }, acceptUnsigned: acceptUnsigned)
        } catch {
            FileHandle.standardError.write(Data("osmosectl: \(error)\n".utf8))
            throw ExitCode(ExitStatus.invalidConfiguration.rawValue)
        }
        guard !trust.keys.isEmpty || acceptUnsigned else {
            FileHandle.standardError.write(
                Data(
                    "osmosectl: backup.verifier_keys is empty: list the backup-signing verifier keys (osmosectl keys status, or the sysadmin's offline record) in the configuration of this machine\n"
                        .utf8))
            throw ExitCode(ExitStatus.invalidConfiguration.rawValue)
        }
        return trust
    }

    /// Runs `body`; a store that cannot be trusted ends the command with one line
    /// naming the file and what is wrong, and exit status 5.
    static func refusingForgeries<Result>(_ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch let error as BackupIntegrityError {
            FileHandle.standardError.write(Data("osmosectl: \(error) (\(error.code))\n".utf8))
            throw ExitCode(ExitStatus.integrity.rawValue)
        }
    }

    /// Journals a decision to use files the suite cannot vouch for, before they are used.
    /// - Throws: when the journal cannot be written: the decision is then refused.
    static func journalAcceptance(_ options: GlobalOptions, objectID: String, what: String) async throws {
        do {
            try await options.record(
                AccessEvent.system(by: operatorActor(.sysadmin), action: .backupAdmin, objectType: "backup", objectID: objectID, reason: what))
        } catch {
            FileHandle.standardError.write(
                Data(
                    "osmosectl: \(what.prefix(80))… must be journaled first, and the journal cannot be written (\(error)): pass --database with a reachable Osmose database, or use the standard-tools path (docs/backup.md)\n"
                        .utf8))
            throw ExitCode(ExitStatus.database.rawValue)
        }
    }

    /// `path` made absolute against the current directory (PostgreSQL runs restore_command in the data directory).
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path).standardizedFileURL.path
    }

    /// `text` as one word for the shell that runs restore_command.
    static func shellQuoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// The restore_command for a restore: osmose-backupd wal-fetch with this configuration
    /// and identity (the option, backup.identity_file or the backup-identity credential),
    /// absolute paths. wal-fetch's status 1 (no such file) ends recovery there; any
    /// other failure, a refused signature above all, becomes 255, which makes
    /// PostgreSQL abort recovery instead of promoting before the refused file.
    static func walFetchCommand(_ options: GlobalOptions, identity: String?, _ backup: SuiteConfiguration.Backup, acceptUnsigned: Bool = false) -> String {
        let configPath = absolute(options.config ?? ProcessInfo.processInfo.environment["OSMOSE_CONFIG"] ?? SuiteConfiguration.defaultPath)
        let credential = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"].map { "\($0)/backup-identity" }
        var words = [siblingExecutable("osmose-backupd"), "wal-fetch", "--config", configPath]
        if let file = identity ?? backup.identityFile ?? credential { words += ["--identity", absolute(file)] }
        if acceptUnsigned { words.append("--accept-unsigned") }
        return words.map(shellQuoted).joined(separator: " ") + " %f %p || { s=$?; [ $s -eq 1 ] && exit 1; exit 255; }"
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every backup in the store, oldest first (needs no key to decrypt; checks each backup's signature).",
            discussion: """
                Refuses (exit status 5, naming the file) a store holding a backup or tombstone that is unsigned, signed by a key \
                backup.verifier_keys does not list, or not what was signed, or whose chain is broken.
                """)
        @OptionGroup var options: GlobalOptions
        @Flag(help: "List a store from before signing (unsigned backups older than every signed one).") var acceptUnsigned = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let backup = try options.loadConfiguration().backup
                let audit = BackupCatalogue(store: backup.store).audit(trust: try BackupCommand.trust(backup, acceptUnsigned: acceptUnsigned))
                try await BackupCommand.refusingForgeries { try audit.requireIntact() }
                let summaries = audit.trusted
                if json { return try printJSON(summaries) }
                printTable(
                    ["ID", "KIND", "FINISHED", "WAL FROM", "WAL TO", "SIZE", "MEMBERS", "PARENT", "SIGNED BY"],
                    summaries.map { summary in
                        let signers = audit.signatures[summary.id].map { $0.signedBy.map { String(format: "%08x", $0.verifier.keyID) }.joined(separator: ",") }
                        return [
                            summary.id, summary.kind, summary.finished, summary.walStart, summary.walEnd, "\(summary.bytes)", "\(summary.memberCount)",
                            summary.parent ?? "-", signers ?? "UNSIGNED",
                        ]
                    })
                let segments = try WALArchive(store: backup.store).names()
                print("\(summaries.count) backups; \(segments.count) WAL files archived\(segments.last.map { ", newest \($0)" } ?? "")")
                if !audit.unsignedAccepted.isEmpty {
                    print("\(audit.unsignedAccepted.count) listed without a signature (--accept-unsigned): \(audit.unsignedAccepted.prefix(5).joined(separator: ", "))")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One backup's summary, and with --identity its manifest.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The backup id.") var id: String
        @Option(help: "An age identity file, to decrypt the manifest.") var identity: String?
        @Flag(help: "Show a backup from before signing.") var acceptUnsigned = false

        func run() async throws {
            try await reportingFailures {
                let backup = try options.loadConfiguration().backup
                let catalogue = BackupCatalogue(store: backup.store)
                let audit = catalogue.audit(trust: try BackupCommand.trust(backup, acceptUnsigned: acceptUnsigned))
                guard let summary = audit.summaries.first(where: { $0.id == id }) else { throw ValidationError("no backup \(id) in \(backup.store)") }
                try await BackupCommand.refusingForgeries {
                    if let failure = audit.failures.first(where: { $0.subject.hasPrefix("base/\(id)/") }) { throw failure }
                }
                try printJSON(summary)
                if identity != nil || backup.identityFile != nil {
                    try printJSON(try catalogue.manifest(id, identities: try BackupCommand.identities(identity, backup)))
                }
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the backups and every WAL file against the manifests, digests and catalogue chain, without restoring.",
            discussion: """
                Each backup's archive is compared with the SHA-256 recorded when it was written and opened with the identity; \
                --read-data decrypts and decompresses every member and compares it with the manifest instead. Every WAL \
                file is decrypted and compared with its signed digest. First, every signature: each backup's, tombstone's and \
                WAL file's, by a key backup.verifier_keys lists (a retired key only for what precedes its retirement), and the \
                files they cover; then the store against its signed head in each of backup.head_directories (a rollback). \
                Exit status 5 when anything is unsigned, forged, damaged or missing; each problem names the file.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The age identity file (default: backup.identity_file).") var identity: String?
        @Flag(help: "Check every backup, not only the newest.") var all = false
        @Flag(help: "Decrypt and decompress every member of the backups checked and compare it with the manifest.") var readData = false
        @Flag(help: "Accept files without signature older than everything signed (a store from before signing); journaled.") var acceptUnsigned = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            BulkIO.tuneAllocator()
            try await reportingFailures {
                let configuration = try options.loadConfiguration()
                let backup = configuration.backup
                let verifier = BackupVerifier(
                    store: backup.store, identities: try BackupCommand.identities(identity, backup),
                    trust: try BackupCommand.trust(backup, acceptUnsigned: acceptUnsigned), headDirectories: configuration.backupHeadDirectories)
                let report = verifier.verify(all: all, readData: readData)
                if json {
                    try printJSON(report)
                } else {
                    let how = [
                        report.membersChecked > 0 ? "\(report.membersChecked) members read" : nil,
                        report.archivesCompared > 0 ? "\(report.archivesCompared) archives compared with their recorded SHA-256" : nil,
                    ].compactMap { $0 }.joined(separator: ", ")
                    print("checked \(report.backupsChecked) backups (\(how.isEmpty ? "nothing readable" : how)) and \(report.segmentsChecked) WAL files; \(report.signaturesChecked) signatures")
                    for note in report.headNotes { print("head: \(note)") }
                    if !report.unsignedAccepted.isEmpty {
                        print("accepted without a signature (--accept-unsigned): \(report.unsignedAccepted.count) files, first \(report.unsignedAccepted[0])")
                    }
                    for problem in report.problems { print("FAIL \(problem)") }
                    if report.passed { print("backups verified: OK") }
                }
                let unsigned = report.unsignedAccepted.isEmpty ? "" : "; \(report.unsignedAccepted.count) files accepted unsigned (--accept-unsigned)"
                try? await journalOutcome(
                    options, objectID: (all ? "all" : "newest") + (readData ? "+data" : ""), passed: report.passed,
                    detail: "\(report.problems.count) problems\(unsigned)")
                if !report.passed { throw ExitCode(ExitStatus.integrity.rawValue) }
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore the cluster to a moment (or the latest archived WAL) into an empty directory, ready for PostgreSQL to start.",
            discussion: """
                Before writing anything: checks every backup's signature and the chain, the store against its signed heads \
                (backup.head_directories), and each WAL file to replay against its signature (exit status 5, naming the \
                file). Chooses the newest backup that finished before --to, checks every member against its manifest while \
                writing it (a damaged member empties the directory and refuses), refuses a gap in the WAL archive, then writes \
                recovery.signal and the recovery settings. Start PostgreSQL on the directory (as its owner) to replay WAL up to --to.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "latest, or a moment such as 2026-11-22T10:15:00Z.") var to: String
        @Option(help: "The new data directory (absent or empty).") var target: String
        @Option(help: "Also restore the suite's files (configuration, policies, witness copies, file_trees) as they were at --to into this directory (absent or empty).")
        var files: String?
        @Option(help: "The age identity file (default: backup.identity_file).") var identity: String?
        @Flag(help: "Restore from a store from before signing (files without signature, older than everything signed); journaled first.")
        var acceptUnsigned = false
        @Flag(help: "Restore from a store older than its signed head (an outdated copy, the only one left); journaled first.") var acceptRollback = false
        @Flag(help: "Say which backup and WAL would be used; write nothing.") var dryRun = false

        func run() async throws {
            BulkIO.tuneAllocator()
            try await reportingFailures {
                let configuration = try options.loadConfiguration()
                let backup = configuration.backup
                let goal: RecoveryTarget
                if to == "latest" {
                    goal = .latest
                } else if let moment = rfc3339Moment(to) {
                    goal = .time(moment)
                } else {
                    throw ValidationError("--to must be latest or an RFC 3339 UTC time such as 2026-11-22T10:15:00Z")
                }
                let restorer = BackupRestore(
                    store: backup.store, identities: try BackupCommand.identities(identity, backup),
                    trust: try BackupCommand.trust(backup, acceptUnsigned: acceptUnsigned), headDirectories: configuration.backupHeadDirectories)
                let plan = try await BackupCommand.refusingForgeries { try restorer.prepare(goal, acceptRollback: acceptRollback) }
                for note in plan.headNotes { print("head: \(note)") }
                if dryRun {
                    print(
                        "would restore the cluster from backup \(plan.base.id) into \(target) and replay WAL \(plan.walFrom)…\(plan.walTo) up to \(to); every signature checked; nothing written"
                    )
                    if let files { print("would restore the suite's files as backup \(plan.chosen.id) lists them into \(files)") }
                    if !plan.unsignedAccepted.isEmpty { print("would accept \(plan.unsignedAccepted.count) files without a signature, first \(plan.unsignedAccepted[0])") }
                    for rollback in plan.rollbacksAccepted { print("would accept a store older than its head: \(rollback)") }
                    return
                }
                if !plan.unsignedAccepted.isEmpty {
                    try await BackupCommand.journalAcceptance(
                        options, objectID: plan.base.id,
                        what: "restore into \(target) accepts \(plan.unsignedAccepted.count) unsigned files (--accept-unsigned), first \(plan.unsignedAccepted[0])")
                }
                for rollback in plan.rollbacksAccepted {
                    try await BackupCommand.journalAcceptance(
                        options, objectID: plan.base.id, what: "restore into \(target) accepts a store older than its signed head (--accept-rollback): \(rollback.message)")
                }
                let command = BackupCommand.walFetchCommand(options, identity: identity, backup, acceptUnsigned: !plan.unsignedAccepted.isEmpty)
                let report = try restorer.restore(plan, into: target, restoreCommand: command)
                print("restored backup \(report.backup) (\(report.members) files) into \(target); WAL \(report.walFrom)…\(report.walTo) available; recovery target: \(to)")
                var detail = "restored to \(to) into \(target)"
                if let files {
                    let restored = try restorer.restoreFiles(plan, into: files)
                    print("restored the suite's files as backup \(restored.backup) lists them (\(restored.files) files) into \(files)")
                    detail += "; suite files of \(restored.backup) into \(files)"
                }
                for line in report.nextSteps(target: target) { print(line) }
                try? await journalOutcome(options, objectID: report.backup, passed: true, detail: detail)
            }
        }
    }
}

extension BackupCommand {
    struct Drill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore the latest backup into a temporary cluster, start it, check it, remove it, and journal the result.",
            discussion: """
                Runs the cluster with the newest PostgreSQL under /usr/lib/postgresql/*/bin. Checks: recovery ends and the \
                cluster accepts connections; the row count of every table of the suite's database (reported); the restored \
                journal verifies as with osmosectl journal verify (keys from journal.verifier_keys or the signing key files; \
                without witness copies, which are newer than any backup). Before restoring, every signature is checked as by \
                backup restore. Exit status 5 when a signature or a check fails.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The age identity file (default: backup.identity_file or the backup-identity credential).") var identity: String?
        @Flag(help: "Drill on a store from before signing (files without signature, older than everything signed); journaled first.")
        var acceptUnsigned = false
        @Option(help: "Where to build the temporary cluster (default: a new directory under /tmp).") var directory: String?
        @Flag(help: "Leave the temporary cluster stopped in place instead of removing it.") var keep = false

        func run() async throws {
            BulkIO.tuneAllocator()
            try await reportingFailures {
                let configuration = try options.loadConfiguration()
                let backup = configuration.backup
                let journal = configuration.journal
                let options = self.options
                let drill = RestoreDrill(
                    restorer: BackupRestore(
                        store: backup.store, identities: try BackupCommand.identities(identity, backup),
                        trust: try BackupCommand.trust(backup, acceptUnsigned: acceptUnsigned), headDirectories: configuration.backupHeadDirectories),
                    restoreCommand: BackupCommand.walFetchCommand(options, identity: identity, backup, acceptUnsigned: acceptUnsigned),
                    databaseName: RestoreDrill.databaseName(inConnectionString: configuration.database.connection),
                    programs: try PostgresServerPrograms.locate(), directory: directory, keep: keep,
                    journalVerifierKeys: { try resolveVerifierKeys([], journal) },
                    acceptingUnsigned: { files in
                        try await BackupCommand.journalAcceptance(
                            options, objectID: "drill", what: "restore drill accepts \(files.count) unsigned files (--accept-unsigned), first \(files[0])")
                    }, logger: options.logger)
                let report = try await BackupCommand.refusingForgeries { try await drill.run() }
                for count in report.tables { print("  \(count.table): \(count.rows) rows") }
                let restore = report.restore
                print(
                    report.passed
                        ? "drill passed: backup \(restore.backup) restored (\(restore.members) files, WAL up to \(restore.walTo)), started and checked"
                        : "drill FAILED:")
                for problem in report.problems { print("  \(problem)") }
                try? await journalOutcome(
                    options, objectID: restore.backup, passed: report.passed,
                    detail: "drill: \(report.tables.count) tables counted; \(report.problems.joined(separator: "; "))")
                if !report.passed { throw ExitCode(ExitStatus.integrity.rawValue) }
            }
        }
    }
}

/// The installed path of `name`: beside this executable (`/proc/self/exe`: argv[0]
/// may be a bare name found on PATH), else its link in /usr/sbin or /usr/bin.
func siblingExecutable(_ name: String) -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let own = length > 0 ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    let beside = URL(fileURLWithPath: own).deletingLastPathComponent().appendingPathComponent(name).path
    // The Debian package's one executable (/usr/lib/osmose/osmose) has no sibling of
    // that name: the program is its link in /usr/sbin.
    let candidates = [beside, "/usr/sbin/\(name)", "/usr/bin/\(name)"]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? beside
}

/// Journals a backup operation when the database is reachable (a restore or a
/// verification may run where it is not; the outcome is printed either way).
func journalOutcome(_ options: GlobalOptions, objectID: String, passed: Bool, detail: String) async throws {
    try await options.record(
        AccessEvent.system(by: operatorActor(.sysadmin), action: .backupAdmin, objectType: "backup", objectID: objectID, reason: "\(passed ? "ok" : "FAILED"): \(detail)"))
}
