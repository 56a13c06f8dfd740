import ArgumentParser
import Foundation
import Schema

struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Database schema: apply migrations, show their state.",
        subcommands: [Migrate.self, Status.self]
    )

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply pending migrations in order, each in its own transaction.",
            discussion: """
                Safe to run twice and from two hosts at once. Refuses (exit 5) when an applied \
                migration file was edited or the database was migrated by a newer build. Run it as \
                a role that owns the schemas (e.g. --database "user=postgres").
                """)

        @OptionGroup var options: GlobalOptions
        @Flag(help: "List what would be applied; change nothing.") var dryRun = false
        @Flag(help: "Print the result as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let migrator = Migrator(migrations: try MigrationSet.bundled(), logger: options.logger)
                let applied = try await options.withConnection { connection in
                    try await migrator.migrate(on: connection, appliedBy: operatorIdentity, dryRun: dryRun)
                }
                let names = applied.map(\.fileName)
                if json {
                    try printJSON(MigrateReport(dryRun: dryRun, migrations: names))
                } else if names.isEmpty {
                    print("database schema is up to date")
                } else {
                    print(dryRun ? "would apply:" : "applied:")
                    names.forEach { print("  \($0)") }
                }
            }
        }
    }

    struct MigrateReport: Encodable {
        let dryRun: Bool
        let migrations: [String]
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show each migration: applied, pending, modified since applied, or unknown to this build.",
            discussion: "Exits 5 when a migration is modified or unknown.")

        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print the list as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let migrator = Migrator(migrations: try MigrationSet.bundled(), logger: options.logger)
                let statuses = try await options.withConnection { connection in try await migrator.status(on: connection) }
                if json {
                    try printJSON(statuses)
                } else {
                    printTable(
                        ["VERSION", "NAME", "STATE", "APPLIED AT"],
                        statuses.map { [String(format: "%04d", $0.version), $0.name, $0.state.rawValue, $0.appliedAt.map(isoTimestamp) ?? "-"] })
                }
                if statuses.contains(where: { $0.state == .modified || $0.state == .unknown }) {
                    throw ExitCode(ExitStatus.integrity.rawValue)
                }
            }
        }
    }
}
