import Age
import ArgumentParser
import Backup
import Foundation
import Journal
import Settings

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Encrypted backups: list, show, verify, restore to a point in time.",
        subcommands: [List.self, Show.self, Verify.self, Restore.self])

    /// The store and, where decryption is needed, the identities.
    static func identities(_ option: String?, _ backup: SuiteConfiguration.Backup) throws -> [any AgeUnwrapping] {
        guard let file = option ?? backup.identityFile else {
            throw ValidationError("decrypting needs an age identity: pass --identity FILE or set backup.identity_file")
        }
        guard let text = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read the identity file \(file)") }
        return try AgeIdentity.parseFile(String(decoding: text, as: UTF8.self))
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
            abstract: "Decrypt, decompress and check every member and WAL file against the manifests and the catalogue chain, without restoring.",
            discussion: "Exit status 5 when anything is damaged or missing; each problem names the backup, member or WAL file.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The age identity file (default: backup.identity_file).") var identity: String?
        @Flag(help: "Check every backup, not only the newest.") var all = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let backup = try options.loadConfiguration().backup
                let report = BackupVerifier(store: backup.store, identities: try BackupCommand.identities(identity, backup)).verify(all: all)
                if json {
                    try printJSON(report)
                } else {
                    print("checked \(report.backupsChecked) backups (\(report.membersChecked) members) and \(report.segmentsChecked) WAL files")
                    for problem in report.problems { print("FAIL \(problem)") }
                    if report.passed { print("backups verified: OK") }
                }
                try? await journalOutcome(options, objectID: all ? "all" : "newest", passed: report.passed, detail: "\(report.problems.count) problems")
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
        @Option(help: "The age identity file (default: backup.identity_file).") var identity: String?
        @Flag(help: "Say which backup and WAL would be used; write nothing.") var dryRun = false

        /// An RFC 3339 UTC time, with or without fractional seconds.
        static func moment(_ text: String) -> Date? {
            let precise = ISO8601DateFormatter()
            precise.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return precise.date(from: text) ?? ISO8601DateFormatter().date(from: text)
        }

        func run() async throws {
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
                let identityFile = identity ?? backup.identityFile
                let restorer = BackupRestore(store: backup.store, identities: try BackupCommand.identities(identity, backup))
                if dryRun {
                    let chosen = try restorer.choose(goal)
                    let run = try restorer.walRun(from: chosen.walStart, through: chosen.walEnd)
                    print("would restore backup \(chosen.id) into \(target) and replay WAL \(run.first)…\(run.last) up to \(to); nothing written")
                    return
                }
                let configPath = options.config ?? ProcessInfo.processInfo.environment["OSMOSE_CONFIG"] ?? SuiteConfiguration.defaultPath
                let backupd = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("osmose-backupd").path
                let command = "\(backupd) wal-fetch --config \(configPath) --identity \(identityFile ?? "") %f %p"
                let report = try restorer.restore(to: goal, into: target, restoreCommand: command)
                print("restored backup \(report.backup) (\(report.members) files) into \(target); WAL \(report.walFrom)…\(report.walTo) available; recovery target: \(to)")
                print("next: chown -R postgres:postgres \(target) && pg_ctl -D \(target) start (as postgres)")
                try? await journalOutcome(options, objectID: report.backup, passed: true, detail: "restored to \(to) into \(target)")
            }
        }
    }
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
