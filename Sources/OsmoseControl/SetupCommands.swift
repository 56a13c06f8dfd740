import ArgumentParser
import Foundation
import Settings
import Setup

/// `osmosectl setup`: what the first-run set-up (osmose-setup, docs/install.md)
/// still lacks on this host (--check), and the lists osmose-setup writes from
/// (--units, --peer-map). It reads and connects; it changes nothing.
struct SetupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup",
        abstract: "Report what the first-run set-up still lacks (--check); change nothing.",
        discussion: """
            --check checks the configuration, the journal's origin and verifier keys, the \
            encrypted credentials the units load, the witness and head directories (present, \
            and not all on the backup store's file system), each daemon's database connection, \
            the migrations, the owner role (neither superuser nor CREATEROLE), PostgreSQL's WAL \
            archiving when backups are configured, and (under systemd) that the units are \
            enabled. Prints one line a check: ok, missing (with what to do) or skipped. Exits 0 \
            when nothing is missing, 1 when something is, 3 when the configuration is invalid.

            --units prints the units to enable, in order, for this host (one a line); \
            --peer-map prints the lines of pg_ident.conf's map "osmose". osmose-setup, run as \
            root, does the set-up itself from these lists.
            """)

    @OptionGroup var options: GlobalOptions
    @Flag(help: "Report what is missing.") var check = false
    @Flag(help: "Print the units to enable, in order (one a line).") var units = false
    @Flag(help: "Print the lines of pg_ident.conf's map \"osmose\" (each system user and its role).") var peerMap = false
    @Option(help: "Where the encrypted credentials are.") var credentials = SuiteUnits.credentialsDirectory
    @Option(help: "With --units: whether backups are set up (default: backup.recipients is not empty).")
    var backups: Bool?
    @Option(help: "With --units: whether the backup identity is a credential (default: backup-identity.cred exists).")
    var backupIdentity: Bool?
    @Option(help: "With --units: whether the cold archives' recipients are written (default: /etc/osmose/archive-recipients.txt exists).")
    var archiveRecipients: Bool?
    @Flag(help: "Print the checks as JSON.") var json = false

    func validate() throws {
        guard [check, units, peerMap].filter({ $0 }).count == 1 else {
            throw ValidationError("give one of --check, --units or --peer-map (the set-up itself is osmose-setup, run as root)")
        }
        if (backups != nil || backupIdentity != nil || archiveRecipients != nil) && !units {
            throw ValidationError("--backups, --backup-identity and --archive-recipients go with --units")
        }
    }

    func run() async throws {
        try await reportingFailures {
            if peerMap {
                SuiteAccounts.peerMapLines.forEach { print($0) }
                return
            }
            let configuration = try options.loadConfiguration()
            if units {
                var conditions = SuiteUnits.Conditions.onThisHost(configuration: configuration, credentials: credentials)
                if let backups { conditions.backups = backups }
                if let backupIdentity { conditions.backupIdentity = backupIdentity }
                if let archiveRecipients { conditions.archiveRecipients = archiveRecipients }
                let plan = SuiteUnits.toEnable(conditions)
                plan.units.forEach { print($0) }
                for (unit, reason) in plan.leftOff { FileHandle.standardError.write(Data("\(unit) left off: \(reason)\n".utf8)) }
                return
            }
            let checks = await SetupCheck.all(configuration, credentials: credentials, logger: options.logger)
            if json {
                try printJSON(checks)
            } else {
                printTable(["CHECK", "STATE", "DETAIL"], checks.map { [$0.name, $0.state.rawValue, $0.detail] })
            }
            if checks.contains(where: { $0.state == .missing }) { throw ExitCode(ExitStatus.failure.rawValue) }
        }
    }
}
