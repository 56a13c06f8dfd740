import ArgumentParser
import CareRecords
import Settings
import Foundation
import Journal
import Store

/// Records an administrative action of `osmosectl` in the access journal, in the
/// same transaction as the change.
func recordAdministration(_ action: AccessAction, objectType: String, objectID: String?, reason: String? = nil, on connection: isolated Connection) throws {
    var event = AccessEvent(source: "osmosectl", requestID: UUID().uuidString.lowercased(), action: action, objectType: objectType, result: .success)
    event.actorUsername = operatorIdentity.split(separator: " ").first.map(String.init)
    event.actorRole = "sysadmin"
    event.objectID = objectID
    event.purpose = .administration
    event.reason = reason
    try connection.record(event)
}

struct TeamsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "teams", abstract: "Care teams (e.g. the emergency department, the psychiatry liaison team).",
        subcommands: [Add.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a team.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Short code: lowercase letters, digits, hyphens (e.g. sau, epl).") var code: String
        @Argument(help: "Display name.") var name: String

        func run() async throws {
            try await reportingFailures {
                let connection = try await options.connect()
                let (code, name) = (code, name)
                try await connection.transaction { connection in
                    let id = UUID()
                    try connection.query("INSERT INTO care.teams (id, code, name) VALUES ($1, $2, $3)", [id, code, name])
                    try recordAdministration(.userAdmin, objectType: "team", objectID: id.uuidString.lowercased(), on: connection)
                }
                await connection.close()
                print("team \(code) created")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List teams.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print as JSON.") var json = false

        struct Team: Encodable { let code: String; let name: String }

        func run() async throws {
            try await reportingFailures {
                let connection = try await options.connect()
                let teams = try await connection.query("SELECT code, name FROM care.teams ORDER BY code").rows.map {
                    Team(code: try $0.string("code"), name: try $0.string("name"))
                }
                await connection.close()
                if json { try printJSON(teams) } else { printTable(["CODE", "NAME"], teams.map { [$0.code, $0.name] }) }
            }
        }
    }
}

struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "Accounts of the care service. The first admin is created here.",
        subcommands: [Add.self, Disable.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an account. The password is read from standard input (one line, 12 characters or more).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Login name: lowercase letters, digits, dots, hyphens, underscores.") var username: String
        @Option(help: "agent, manager or admin.") var role: String
        @Option(help: "Team code (required except for admin).") var team: String?
        @Option(help: "Name shown to colleagues.") var displayName: String?

        func run() async throws {
            try await reportingFailures {
                guard let role = Role(rawValue: role) else { throw ValidationError("--role must be agent, manager or admin") }
                guard role == .admin || team != nil else { throw ValidationError("--team is required for an agent or a manager") }
                guard let password = readLine(strippingNewline: true), !password.isEmpty else {
                    throw ValidationError("give the password on standard input")
                }
                let hash = try PasswordHasher(costExponent: try options.loadConfiguration().care.passwordCost).hash(password)
                let connection = try await options.connect()
                let (username, team, displayName) = (username, team, displayName ?? username)
                try await connection.transaction { connection in
                    var teamID: UUID?
                    if let team {
                        guard let row = try connection.query("SELECT id FROM care.teams WHERE code = $1", [team]).rows.first else {
                            throw ValidationError("no team with code \(team): create it with osmosectl teams add")
                        }
                        teamID = try row.uuid("id")
                    }
                    let id = UUID()
                    try connection.query(
                        "INSERT INTO care.users (id, username, display_name, role, team_id, password_hash) VALUES ($1, $2, $3, $4, $5::uuid, $6)",
                        [id, username, displayName, role.rawValue, teamID, hash])
                    try recordAdministration(.userAdmin, objectType: "user", objectID: id.uuidString.lowercased(), reason: "created", on: connection)
                }
                await connection.close()
                print("user \(username) created (\(role.rawValue)\(team.map { ", team \($0)" } ?? ""))")
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an account and end its sessions. Use --dry-run to see what would change.")
        @OptionGroup var options: GlobalOptions
        @Argument var username: String
        @Flag(help: "Report what would change; change nothing.") var dryRun = false

        func run() async throws {
            try await reportingFailures {
                let connection = try await options.connect()
                let (username, dryRun) = (username, dryRun)
                let sessions = try await connection.transaction { connection -> Int in
                    guard let row = try connection.query("SELECT id FROM care.users WHERE username = $1 FOR UPDATE", [username]).rows.first else {
                        throw ValidationError("no user named \(username)")
                    }
                    let id = try row.uuid("id")
                    let open = try connection.query(
                        "SELECT count(*) AS n FROM care.sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > clock_timestamp()", [id]
                    ).rows[0].int("n")
                    guard !dryRun else { return open }
                    try connection.query("UPDATE care.users SET disabled = true WHERE id = $1", [id])
                    try connection.query("UPDATE care.sessions SET revoked_at = clock_timestamp() WHERE user_id = $1 AND revoked_at IS NULL", [id])
                    try recordAdministration(.userAdmin, objectType: "user", objectID: id.uuidString.lowercased(), reason: "disabled", on: connection)
                    return open
                }
                await connection.close()
                print(dryRun ? "would disable \(username) and end \(sessions) open session(s)" : "disabled \(username); ended \(sessions) open session(s)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let connection = try await options.connect()
                let users = try await connection.transaction { connection in
                    let users = try UserDirectory.list(on: connection)
                    try recordAdministration(.read, objectType: "user-list", objectID: nil, on: connection)
                    return users
                }
                await connection.close()
                if json {
                    try printJSON(users)
                } else {
                    printTable(
                        ["USERNAME", "ROLE", "TEAM", "STATE", "NAME"],
                        users.map { [$0.username, $0.role.rawValue, $0.team ?? "-", $0.disabled ? "disabled" : ($0.locked ? "locked" : "active"), $0.displayName] })
                }
            }
        }
    }
}
