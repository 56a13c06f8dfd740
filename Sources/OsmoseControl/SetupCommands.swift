import ArgumentParser
import Foundation
import Logging
import Schema
import Settings
import Store

/// `osmosectl setup --check`: what the first-run set-up (osmose-setup, docs/install.md)
/// still lacks on this host. It reads and connects; it changes nothing.
struct SetupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Report what the first-run set-up still lacks (--check); change nothing.",
        discussion: """
            Checks the configuration, the journal's origin and verifier keys, the encrypted \
            credentials the units load, each daemon's database connection, the migrations, the \
            backups' recipients and verifier keys, the witness and head directories, and (under \
            systemd) that the units are enabled. Prints one line a check: ok, missing (with what \
            to do) or skipped. Exits 0 when nothing is missing, 1 when something is, 3 when the \
            configuration is invalid. The set-up itself is osmose-setup, run as root.
            """)

    @OptionGroup var options: GlobalOptions
    @Flag(help: "Report what is missing (the only mode: the set-up itself is osmose-setup).") var check = false
    @Option(help: "Where the encrypted credentials are.") var credentials = "/etc/osmose/credentials"
    @Flag(help: "Print the checks as JSON.") var json = false

    func validate() throws {
        guard check else { throw ValidationError("osmosectl setup only checks: give --check (the set-up itself is osmose-setup, run as root)") }
    }

    func run() async throws {
        try await reportingFailures {
            let configuration = try options.loadConfiguration()
            var checks = SetupCheck.configuration(configuration, credentials: credentials)
            checks += await SetupCheck.database(configuration, logger: options.logger)
            checks += SetupCheck.units(configuration)
            if json {
                try printJSON(checks)
            } else {
                printTable(["CHECK", "STATE", "DETAIL"], checks.map { [$0.name, $0.state.rawValue, $0.detail] })
            }
            if checks.contains(where: { $0.state == .missing }) { throw ExitCode(ExitStatus.failure.rawValue) }
        }
    }
}

/// One line of `osmosectl setup --check`.
struct SetupCheck: Encodable, Equatable {
    enum State: String, Encodable { case ok, missing, skipped }
    let name: String
    let state: State
    /// What was found, or what to do.
    let detail: String

    static func ok(_ name: String, _ detail: String) -> SetupCheck { SetupCheck(name: name, state: .ok, detail: detail) }
    static func missing(_ name: String, _ detail: String) -> SetupCheck { SetupCheck(name: name, state: .missing, detail: detail) }

    /// The credentials each unit loads with LoadCredentialEncrypted=, by file name.
    static func credentialFiles(backups: Bool) -> [(file: String, units: String)] {
        var files = [
            ("master-key.cred", "osmose-care, osmose-keyd, osmose-retentiond, osmose-dsard, osmose-console"),
            ("journal-signing-key.cred", "osmose-journald"),
            ("console-key.cred", "osmose-console"),
        ]
        if backups { files.append(("backup-signing-key.cred", "osmose-backupd's units and PostgreSQL's archive_command")) }
        return files
    }

    /// What the configuration file and the files it names must hold.
    static func configuration(_ configuration: SuiteConfiguration, credentials: String) -> [SetupCheck] {
        var checks: [SetupCheck] = []
        let journal = configuration.journal
        checks.append(
            journal.origin == SuiteConfiguration.defaults.journal.origin
                ? .missing("journal.origin", "still \(journal.origin): osmose-setup --origin journal.<your domain>")
                : .ok("journal.origin", journal.origin))
        checks.append(
            journal.verifierKeys.isEmpty
                ? .missing("journal.verifier_keys", "empty: the first signing key's verifier key (osmose-setup writes it)")
                : .ok("journal.verifier_keys", "\(journal.verifierKeys.count) key(s)"))
        let backups = !configuration.backup.recipients.isEmpty
        for (file, units) in credentialFiles(backups: backups) {
            let path = "\(credentials)/\(file)"
            checks.append(
                FileManager.default.fileExists(atPath: path)
                    ? .ok("credential \(file)", path)
                    : .missing("credential \(file)", "\(path) is absent (loaded by \(units)): osmose-setup generates it"))
        }
        checks.append(
            backups
                ? .ok("backup.recipients", "\(configuration.backup.recipients.count) recipient(s)")
                : .missing("backup.recipients", "empty: no backup can be taken (osmose-setup --backup-recipient age1…)"))
        if backups {
            checks.append(
                configuration.backup.verifierKeys.isEmpty
                    ? .missing("backup.verifier_keys", "empty: verify and restore refuse the store (osmose-setup writes the first)")
                    : .ok("backup.verifier_keys", "\(configuration.backup.verifierKeys.count) key(s)"))
        }
        for (setting, directories) in [("journal.witness_directories", journal.witnessDirectories), ("backup.head_directories", configuration.backupHeadDirectories)] {
            guard !directories.isEmpty else {
                checks.append(.missing(setting, "empty: list at least one directory, and one more on other storage"))
                continue
            }
            let absent = directories.filter { !FileManager.default.fileExists(atPath: $0) }
            checks.append(
                absent.isEmpty
                    ? .ok(setting, directories.joined(separator: ", ") + (directories.count == 1 ? " (add one on other storage)" : ""))
                    : .missing(setting, "\(absent.joined(separator: ", ")) does not exist (an unmounted mount point?)"))
        }
        return checks
    }

    /// Each daemon's connection, as configured (from root, peer authentication maps
    /// root to every role: osmose-setup's pg_ident map), and the migrations.
    static func database(_ configuration: SuiteConfiguration, logger: Logger) async -> [SetupCheck] {
        var checks: [SetupCheck] = []
        let connections = [
            ("database.connection", configuration.database.connection), ("care.database", configuration.careConnection),
            ("journal.database", configuration.journalConnection), ("keys.database", configuration.keysConnection),
            ("retention.database", configuration.retentionConnection), ("dsar.database", configuration.subjectRequestConnection),
            ("console.database", configuration.consoleConnection), ("backup.database", configuration.backupConnection),
        ]
        for (setting, connection) in connections {
            do {
                let role = try await Connection.withConnection(connection, applicationName: "osmosectl setup", logger: logger) { connection in
                    try await connection.perform { connection in try connection.userName() }
                }
                checks.append(.ok(setting, "connects as \(role)"))
            } catch {
                checks.append(.missing(setting, "cannot connect (\(error)): osmose-setup creates the database and the peer map"))
            }
        }
        do {
            let migrator = Migrator(migrations: try MigrationSet.bundled(), logger: logger)
            let statuses = try await Connection.withConnection(configuration.database.connection, applicationName: "osmosectl setup", logger: logger) {
                connection in try await migrator.status(on: connection)
            }
            let pending = statuses.filter { $0.state == .pending }
            let wrong = statuses.filter { $0.state == .modified || $0.state == .unknown }
            if !wrong.isEmpty {
                checks.append(.missing("migrations", "\(wrong.count) modified or unknown: osmosectl db status (runbook-sysadmin.md)"))
            } else if !pending.isEmpty {
                checks.append(.missing("migrations", "\(pending.count) pending: systemctl start osmose-migrate.service"))
            } else {
                checks.append(.ok("migrations", "\(statuses.count) applied"))
            }
        } catch {
            checks.append(.missing("migrations", "cannot be read (\(error))"))
        }
        return checks
    }

    /// The units osmose-setup enables, when systemd runs this host.
    static func units(_ configuration: SuiteConfiguration) -> [SetupCheck] {
        guard FileManager.default.fileExists(atPath: "/run/systemd/system") else {
            return [SetupCheck(name: "units", state: .skipped, detail: "systemd is not running here")]
        }
        var units = [
            "osmose-migrate.service", "osmose-journald.socket", "osmose-journald.service", "osmose-care.service", "osmose-console.service",
            "osmose-dsard.service", "osmose-keyd.timer", "osmose-retentiond.timer",
        ]
        if !configuration.backup.recipients.isEmpty { units += ["osmose-backupd-full.timer", "osmose-backupd-incremental.timer"] }
        return units.map { unit in
            let state = systemctlIsEnabled(unit)
            return state == "enabled" ? .ok(unit, "enabled") : .missing(unit, "\(state): systemctl enable --now \(unit)")
        }
    }

    /// `systemctl is-enabled UNIT`'s answer.
    static func systemctlIsEnabled(_ unit: String) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/systemctl")
        process.arguments = ["is-enabled", unit]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return "unknown (systemctl: \(error))"
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let state = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return state.isEmpty ? "not found" : state
    }
}
