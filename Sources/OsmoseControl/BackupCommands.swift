import Age
import ArgumentParser
import Backup
import Foundation
import Journal
import Logging
import Settings
import Store
import Glibc

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Encrypted backups: list, show, verify, restore to a point in time.",
        subcommands: [List.self, Show.self, Verify.self, Restore.self, Drill.self])

    /// The store and, where decryption is needed, the identities.
    static func identities(_ option: String?, _ backup: SuiteConfiguration.Backup) throws -> [any AgeUnwrapping] {
        let credential = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"].map { "\($0)/backup-identity" }
        guard let file = option ?? backup.identityFile ?? credential.flatMap({ FileManager.default.fileExists(atPath: $0) ? $0 : nil }) else {
            throw ValidationError("decrypting needs an age identity: pass --identity FILE, set backup.identity_file, or pass the backup-identity credential")
        }
        guard let text = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read the identity file \(file)") }
        return try AgeIdentities.parseFile(String(decoding: text, as: UTF8.self))
    }

    /// `path` made absolute against the current directory (PostgreSQL runs restore_command in the data directory).
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path).standardizedFileURL.path
    }

    /// `text` as one word for the shell that runs restore_command.
    static func shellQuoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// The restore_command for a restore: osmose-backupd wal-fetch with this configuration
    /// and identity (the option, backup.identity_file or the backup-identity credential), absolute paths.
    static func walFetchCommand(_ options: GlobalOptions, identity: String?, _ backup: SuiteConfiguration.Backup) -> String {
        let configPath = absolute(options.config ?? ProcessInfo.processInfo.environment["OSMOSE_CONFIG"] ?? SuiteConfiguration.defaultPath)
        let credential = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"].map { "\($0)/backup-identity" }
        var words = [siblingExecutable("osmose-backupd"), "wal-fetch", "--config", configPath]
        if let file = identity ?? backup.identityFile ?? credential { words += ["--identity", absolute(file)] }
        return words.map(shellQuoted).joined(separator: " ") + " %f %p"
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every backup in the store, oldest first (needs no key).")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let store = try options.loadConfiguration().backup.store
                let summaries = try BackupCatalogue(store: store).summaries()
                if json { return try printJSON(summaries) }
                printTable(
                    ["ID", "KIND", "FINISHED", "WAL FROM", "WAL TO", "SIZE", "MEMBERS", "PARENT"],
                    summaries.map { [$0.id, $0.kind, $0.finished, $0.walStart, $0.walEnd, "\($0.bytes)", "\($0.memberCount)", $0.parent ?? "-"] })
                let segments = try WALArchive(store: store).names()
                print("\(summaries.count) backups; \(segments.count) WAL files archived\(segments.last.map { ", newest \($0)" } ?? "")")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One backup's summary, and with --identity its manifest.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The backup id.") var id: String
        @Option(help: "An age identity file, to decrypt the manifest.") var identity: String?

        func run() async throws {
            try await reportingFailures {
                let backup = try options.loadConfiguration().backup
                let catalogue = BackupCatalogue(store: backup.store)
                guard let summary = try catalogue.summaries().first(where: { $0.id == id }) else { throw ValidationError("no backup \(id) in \(backup.store)") }
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
                file is decrypted and compared with its digest. Exit status 5 when anything is damaged or missing; each \
                problem names the backup, member or WAL file.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The age identity file (default: backup.identity_file).") var identity: String?
        @Flag(help: "Check every backup, not only the newest.") var all = false
        @Flag(help: "Decrypt and decompress every member of the backups checked and compare it with the manifest.") var readData = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            BulkIO.tuneAllocator()
            try await reportingFailures {
                let backup = try options.loadConfiguration().backup
                let report = BackupVerifier(store: backup.store, identities: try BackupCommand.identities(identity, backup)).verify(all: all, readData: readData)
                if json {
                    try printJSON(report)
                } else {
                    let how = [
                        report.membersChecked > 0 ? "\(report.membersChecked) members read" : nil,
                        report.archivesCompared > 0 ? "\(report.archivesCompared) archives compared with their recorded SHA-256" : nil,
                    ].compactMap { $0 }.joined(separator: ", ")
                    print("checked \(report.backupsChecked) backups (\(how.isEmpty ? "nothing readable" : how)) and \(report.segmentsChecked) WAL files")
                    for problem in report.problems { print("FAIL \(problem)") }
                    if report.passed { print("backups verified: OK") }
                }
                try? await journalOutcome(options, objectID: (all ? "all" : "newest") + (readData ? "+data" : ""), passed: report.passed, detail: "\(report.problems.count) problems")
                if !report.passed { throw ExitCode(5) }
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore the cluster to a moment (or the latest archived WAL) into an empty directory, ready for PostgreSQL to start.",
            discussion: """
                Chooses the newest backup that finished before --to, checks every member against its manifest while writing \
                it (a damaged member empties the directory and refuses), refuses a gap in the WAL archive, then writes \
                recovery.signal and the recovery settings. Start PostgreSQL on the directory (as its owner) to replay WAL up to --to.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "latest, or a moment such as 2026-11-22T10:15:00Z.") var to: String
        @Option(help: "The new data directory (absent or empty).") var target: String
        @Option(help: "Also restore the suite's files (configuration, policies, witness copies, file_trees) as they were at --to into this directory (absent or empty).")
        var files: String?
        @Option(help: "The age identity file (default: backup.identity_file).") var identity: String?
        @Flag(help: "Say which backup and WAL would be used; write nothing.") var dryRun = false

        /// An RFC 3339 UTC time, with or without fractional seconds.
        static func moment(_ text: String) -> Date? {
            let precise = ISO8601DateFormatter()
            precise.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return precise.date(from: text) ?? ISO8601DateFormatter().date(from: text)
        }

        func run() async throws {
            BulkIO.tuneAllocator()
            try await reportingFailures {
                let configuration = try options.loadConfiguration()
                let backup = configuration.backup
                let goal: RecoveryTarget
                if to == "latest" {
                    goal = .latest
                } else if let moment = Self.moment(to) {
                    goal = .time(moment)
                } else {
                    throw ValidationError("--to must be latest or an RFC 3339 UTC time such as 2026-11-22T10:15:00Z")
                }
                let restorer = BackupRestore(store: backup.store, identities: try BackupCommand.identities(identity, backup))
                if dryRun {
                    let chosen = try restorer.choose(goal)
                    let base = try restorer.base(for: chosen)
                    let run = try restorer.walRun(from: base.walStart, through: base.walEnd)
                    print("would restore the cluster from backup \(base.id) into \(target) and replay WAL \(run.first)…\(run.last) up to \(to); nothing written")
                    if let files { print("would restore the suite's files as backup \(chosen.id) lists them into \(files)") }
                    return
                }
                let command = BackupCommand.walFetchCommand(options, identity: identity, backup)
                let report = try restorer.restore(to: goal, into: target, restoreCommand: command)
                print("restored backup \(report.backup) (\(report.members) files) into \(target); WAL \(report.walFrom)…\(report.walTo) available; recovery target: \(to)")
                var detail = "restored to \(to) into \(target)"
                if let files {
                    let restored = try restorer.restoreFiles(to: goal, into: files)
                    print("restored the suite's files as backup \(restored.backup) lists them (\(restored.files) files) into \(files)")
                    detail += "; suite files of \(restored.backup) into \(files)"
                }
                print("next: chown -R postgres:postgres \(target) && pg_ctl -D \(target) start (as postgres)")
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
                Checks: recovery ends and the cluster accepts connections; the row count of every table of the suite's \
                database (reported); osmosectl journal verify on the restored journal (without witness copies, which are \
                newer than any backup). Exit status 5 when a check fails.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The age identity file (default: backup.identity_file or the backup-identity credential).") var identity: String?
        @Option(help: "Where to build the temporary cluster (default: a new directory under /tmp).") var directory: String?
        @Flag(help: "Leave the temporary cluster stopped in place instead of removing it.") var keep = false

        func run() async throws {
            BulkIO.tuneAllocator()
            try await reportingFailures {
                let configuration = try options.loadConfiguration()
                let backup = configuration.backup
                let identities = try BackupCommand.identities(identity, backup)
                let work = directory ?? "/tmp/osmose-drill-\(UUID().uuidString.prefix(8).lowercased())"
                let data = "\(work)/data"
                let socket = "\(work)/socket"
                try FileManager.default.createDirectory(atPath: socket, withIntermediateDirectories: true)
                let configPath = BackupCommand.absolute(options.config ?? ProcessInfo.processInfo.environment["OSMOSE_CONFIG"] ?? SuiteConfiguration.defaultPath)
                let report = try BackupRestore(store: backup.store, identities: identities).restore(
                    to: .latest, into: data, restoreCommand: BackupCommand.walFetchCommand(options, identity: identity, backup))
                let port = 20000 + Int.random(in: 0..<20000)
                let auto = try String(contentsOfFile: "\(data)/postgresql.auto.conf", encoding: .utf8)
                try (auto + "port = \(port)\nlisten_addresses = ''\nunix_socket_directories = '\(socket)'\n").write(toFile: "\(data)/postgresql.auto.conf", atomically: true, encoding: .utf8)
                if getuid() == 0 { _ = try runDrillProgram("/bin/chown", ["-R", "postgres:postgres", work]) }
                var problems: [String] = []
                var counts: [(String, Int64)] = []
                let bin = "/usr/lib/postgresql/15/bin"
                let started = try runDrillProgram("\(bin)/pg_ctl", ["-D", data, "-l", "\(work)/server.log", "-w", "-t", "300", "start"], asPostgres: true)
                if started != 0 { problems.append("the restored cluster did not start (see \(work)/server.log)") }
                let databaseName = configuration.database.connection.split(separator: " ").last { $0.hasPrefix("dbname=") }.map { String($0.dropFirst(7)) } ?? "osmose"
                let restored = "host=\(socket) port=\(port) user=postgres dbname=\(databaseName)"
                if started == 0 {
                    do {
                        let connection = try await Store.Connection.connect(restored, applicationName: "osmosectl-drill", logger: options.logger)
                        let deadline = ContinuousClock.now + .seconds(300)
                        while try await connection.query("SELECT pg_is_in_recovery() AS r").rows[0].bool("r") {
                            guard ContinuousClock.now < deadline else { throw ValidationError("recovery did not end within 300 s") }
                            try await Task.sleep(for: .milliseconds(200))
                        }
                        let tables = try await connection.query(
                            "SELECT format('%I.%I', schemaname, relname) AS t FROM pg_stat_user_tables ORDER BY 1").rows.map { try $0.string("t") }
                        for table in tables {
                            counts.append((table, try await connection.query("SELECT count(*) AS n FROM \(table)").rows[0].int64("n")))
                        }
                        // The journal is verified once it has a checkpoint to verify against.
                        var hasJournal = try await connection.query("SELECT to_regclass('journal.checkpoints') IS NOT NULL AS j").rows[0].bool("j")
                        if hasJournal {
                            hasJournal = try await connection.query("SELECT EXISTS (SELECT 1 FROM journal.checkpoints) AS j").rows[0].bool("j")
                        }
                        await connection.close()
                        if hasJournal {
                            let verify = try runDrillProgram(
                                siblingExecutable("osmosectl"),
                                ["journal", "verify", "--database", restored, "--no-witnesses", "--config", configPath])
                            if verify != 0 { problems.append("osmosectl journal verify failed on the restored journal (status \(verify))") }
                        }
                    } catch {
                        problems.append("checking the restored cluster: \(error)")
                    }
                    _ = try runDrillProgram("\(bin)/pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"], asPostgres: true)
                }
                for (table, count) in counts { print("  \(table): \(count) rows") }
                if !keep { try? FileManager.default.removeItem(atPath: work) }
                let passed = problems.isEmpty
                print(passed ? "drill passed: backup \(report.backup) restored (\(report.members) files, WAL up to \(report.walTo)), started and checked" : "drill FAILED:")
                for problem in problems { print("  \(problem)") }
                try? await journalOutcome(options, objectID: report.backup, passed: passed, detail: "drill: \(counts.count) tables counted; \(problems.joined(separator: "; "))")
                if !passed { throw ExitCode(5) }
            }
        }
    }
}

/// The installed path of `name` beside this executable (`/proc/self/exe`: argv[0]
/// may be a bare name found on PATH).
func siblingExecutable(_ name: String) -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let own = length > 0 ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    return URL(fileURLWithPath: own).deletingLastPathComponent().appendingPathComponent(name).path
}

/// Runs a program for the drill (as postgres when asked and running as root); its
/// exit status. posix_spawn and waitpid: Foundation's Process can miss the child's
/// exit when waited for from an async context.
func runDrillProgram(_ path: String, _ arguments: [String], asPostgres: Bool = false) throws -> Int32 {
    let command = asPostgres && getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", path] + arguments : [path] + arguments
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv = command.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, command[0], &actions, nil, argv, environ)
    guard spawned == 0 else { throw ValidationError("cannot run \(command[0]): \(String(cString: strerror(spawned)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw ValidationError("waiting for \(command[0]) failed") }
    }
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// Journals a backup operation when the database is reachable (a restore or a
/// verification may run where it is not; the outcome is printed either way).
func journalOutcome(_ options: GlobalOptions, objectID: String, passed: Bool, detail: String) async throws {
    let connection = try await options.connect()
    try await connection.transaction { connection in
        try recordAdministration(.backupAdmin, objectType: "backup", objectID: objectID, reason: "\(passed ? "ok" : "FAILED"): \(detail)", on: connection)
    }
    await connection.close()
}
