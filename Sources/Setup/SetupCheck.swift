import Foundation
import Glibc
public import Logging
import Schema
public import Settings
public import Store
public import Systemd

/// One line of `osmosectl setup --check`: what the first-run set-up (osmose-setup,
/// docs/install.md) has or still lacks on this host.
public struct SetupCheck: Encodable, Equatable, Sendable {
    /// ok: in place; missing: to do (the detail says what); skipped: not checkable here.
    public enum State: String, Encodable, Sendable { case ok, missing, skipped }
    /// What is checked: a setting's name, a credential, a unit…
    public let name: String
    /// What the check found.
    public let state: State
    /// What was found, or what to do.
    public let detail: String

    /// A check's line.
    public init(name: String, state: State, detail: String) {
        self.name = name
        self.state = state
        self.detail = detail
    }

    static func ok(_ name: String, _ detail: String) -> SetupCheck { SetupCheck(name: name, state: .ok, detail: detail) }
    static func missing(_ name: String, _ detail: String) -> SetupCheck { SetupCheck(name: name, state: .missing, detail: detail) }
    static func skipped(_ name: String, _ detail: String) -> SetupCheck { SetupCheck(name: name, state: .skipped, detail: detail) }

    /// Every check, in the order they are printed. Reads files, connects to the
    /// database and asks systemd; changes nothing.
    public static func all(_ configuration: SuiteConfiguration, credentials: String, logger: Logger) async -> [SetupCheck] {
        var checks = self.configuration(configuration, credentials: credentials)
        checks += storage(configuration)
        checks += await database(configuration, logger: logger)
        checks += await units(configuration, credentials: credentials)
        return checks
    }

    /// The credentials the units load with LoadCredentialEncrypted=, by file name.
    public static func credentialFiles(backups: Bool) -> [(file: String, units: String)] {
        var files = [
            ("master-key.cred", "osmose-care, osmose-keyd, osmose-retentiond, osmose-dsard, osmose-console"),
            ("journal-signing-key.cred", "osmose-journald"),
            ("console-key.cred", "osmose-console"),
        ]
        if backups { files.append(("backup-signing-key.cred", "osmose-backupd's units and PostgreSQL's archive_command")) }
        return files
    }

    /// What the configuration file and the files it names must hold.
    public static func configuration(_ configuration: SuiteConfiguration, credentials: String) -> [SetupCheck] {
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
        // A Unix socket without socket_group is 0700, the daemon's alone: no reverse
        // proxy can connect (a configuration from before socket_group, kept by dpkg).
        for (setting, listen, group) in [
            ("care.socket_group", configuration.care.listen, configuration.care.socketGroup),
            ("console.socket_group", configuration.console.listen, configuration.console.socketGroup),
        ] where listen.hasPrefix("unix:") {
            checks.append(
                group.map { .ok(setting, "\($0): the socket is 0660 in it") }
                    ?? .missing(setting, "unset: \(listen.dropFirst(5)) is 0700, no reverse proxy can connect (the package's value: \(setting == "care.socket_group" ? "osmose-care-web" : "osmose-console-web"))"))
        }
        if backups {
            checks.append(
                configuration.backup.verifierKeys.isEmpty
                    ? .missing("backup.verifier_keys", "empty: verify and restore refuse the store (osmose-setup writes the first)")
                    : .ok("backup.verifier_keys", "\(configuration.backup.verifierKeys.count) key(s)"))
        }
        return checks
    }

    /// The witness and head directories: present, and not all on the storage of what
    /// they witness. A head copy kept on the backup store's own file system is lost or
    /// rolled back with it, and then cannot show that the store was rolled back.
    public static func storage(_ configuration: SuiteConfiguration) -> [SetupCheck] {
        var checks: [SetupCheck] = []
        let lists = [
            ("journal.witness_directories", configuration.journal.witnessDirectories, nil as String?),
            ("backup.head_directories", configuration.backupHeadDirectories, configuration.backup.recipients.isEmpty ? nil : configuration.backup.store),
        ]
        for (setting, directories, witnessed) in lists {
            guard !directories.isEmpty else {
                checks.append(.missing(setting, "empty: list at least one directory, and one more on other storage"))
                continue
            }
            let absent = directories.filter { !FileManager.default.fileExists(atPath: $0) }
            guard absent.isEmpty else {
                checks.append(.missing(setting, "\(absent.joined(separator: ", ")) does not exist (an unmounted mount point?)"))
                continue
            }
            if let witnessed, let store = device(of: witnessed) {
                let elsewhere = directories.filter { device(of: $0) != store }
                if elsewhere.isEmpty {
                    checks.append(
                        .missing(
                            setting,
                            "\(directories.joined(separator: ", ")) on the same file system as the backup store \(witnessed): add a directory on other storage (a head beside the store is rolled back with it)"
                        ))
                    continue
                }
            }
            let devices = Set(directories.compactMap(device(of:)))
            checks.append(.ok(setting, directories.joined(separator: ", ") + (devices.count < 2 ? " (add one on other storage)" : "")))
        }
        return checks
    }

    /// The device a path's file system is on, nil when it cannot be read.
    static func device(of path: String) -> UInt64? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return UInt64(status.st_dev)
    }

    /// Each daemon's connection, as configured, the migrations, the owner role's
    /// attributes and, with backups, PostgreSQL's WAL archiving. Run as root, the
    /// connections go through root's lines of the peer map (every role of the suite).
    public static func database(_ configuration: SuiteConfiguration, logger: Logger) async -> [SetupCheck] {
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
            try await Connection.withConnection(configuration.database.connection, applicationName: "osmosectl setup", logger: logger) { connection in
                checks.append(try await migrations(on: connection, logger: logger))
                checks.append(try await ownerRole(on: connection))
            }
        } catch {
            checks.append(.missing("migrations", "cannot be read (\(error))"))
        }
        if !configuration.backup.recipients.isEmpty {
            do {
                checks.append(
                    try await Connection.withConnection(configuration.backupConnection, applicationName: "osmosectl setup", logger: logger) {
                        try await walArchiving(on: $0)
                    })
            } catch {
                checks.append(.missing("wal archiving", "cannot be read (\(error))"))
            }
        }
        return checks
    }

    /// The bundled migrations against the database: all applied, none modified or unknown.
    public static func migrations(on connection: Connection, logger: Logger) async throws -> SetupCheck {
        let statuses = try await Migrator(migrations: try MigrationSet.bundled(), logger: logger).status(on: connection)
        let pending = statuses.filter { $0.state == .pending }
        let wrong = statuses.filter { $0.state == .modified || $0.state == .unknown }
        if !wrong.isEmpty { return .missing("migrations", "\(wrong.count) modified or unknown: osmosectl db status (runbook-sysadmin.md)") }
        if !pending.isEmpty { return .missing("migrations", "\(pending.count) pending: systemctl start osmose-migrate.service") }
        return .ok("migrations", "\(statuses.count) applied")
    }

    /// The owner role between migrations: no CREATEROLE (in PostgreSQL 15 a role with
    /// it can grant itself pg_execute_server_program, so it is as good as a superuser,
    /// and every SECURITY DEFINER function it owns runs with it). osmose-setup grants
    /// it only for the length of a migration run.
    public static func ownerRole(on connection: Connection) async throws -> SetupCheck {
        let row = try await connection.query("SELECT current_user::text AS name, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user").rows[0]
        let name = try row.string("name")
        if try row.bool("rolsuper") {
            return .missing("owner role", "\(name) is a superuser: database.connection should log in as \(SuiteAccounts.ownerRole)")
        }
        if try row.bool("rolcreaterole") {
            return .missing("owner role", "\(name) has CREATEROLE (as good as a superuser): ALTER ROLE \(name) NOCREATEROLE, or run osmose-setup again")
        }
        return .ok("owner role", "\(name): neither superuser nor CREATEROLE")
    }

    /// PostgreSQL archives its WAL through osmose-backupd wal-push, and its last
    /// attempt did not fail.
    public static func walArchiving(on connection: Connection) async throws -> SetupCheck {
        let row = try await connection.query(
            """
            SELECT current_setting('archive_mode') AS mode, current_setting('archive_command') AS command,
                   archived_count, failed_count, last_failed_wal,
                   last_failed_time IS NOT NULL AND (last_archived_time IS NULL OR last_failed_time > last_archived_time) AS failing
            FROM pg_stat_archiver
            """
        ).rows[0]
        let mode = try row.string("mode")
        let command = try row.string("command")
        guard mode == "on" || mode == "always" else {
            return .missing("wal archiving", "archive_mode is \(mode): osmose-setup turns it on (a point-in-time restore needs every WAL segment)")
        }
        guard command.contains("osmose-backupd") && command.contains("wal-push") else {
            return .missing("wal archiving", "archive_command is '\(command)', not osmose-backupd wal-push: see docs/install.md")
        }
        if try row.bool("failing") {
            let segment = (try? row.string("last_failed_wal")) ?? "?"
            return .missing("wal archiving", "the last attempt failed (segment \(segment)): PostgreSQL's log says why (journalctl -u postgresql@VERSION-CLUSTER)")
        }
        return .ok("wal archiving", "on, through osmose-backupd wal-push; \(try row.int("archived_count")) segment(s) archived since the statistics' reset")
    }

    /// The units osmose-setup enables (SuiteUnits), when systemd runs this host.
    public static func units(_ configuration: SuiteConfiguration, credentials: String, systemctl: Systemctl = Systemctl()) async -> [SetupCheck] {
        guard Systemctl.isBooted else { return [.skipped("units", "systemd is not running here")] }
        let plan = SuiteUnits.toEnable(.onThisHost(configuration: configuration, credentials: credentials))
        var checks: [SetupCheck] = []
        for unit in plan.units {
            guard let state = await systemctl.enablement(of: unit) else {
                checks.append(.skipped(unit, "systemctl could not be run"))
                continue
            }
            checks.append(state == "enabled" ? .ok(unit, "enabled") : .missing(unit, "\(state): systemctl enable --now \(unit)"))
        }
        checks += plan.leftOff.map { .skipped($0.unit, "left off: \($0.reason)") }
        return checks
    }
}
