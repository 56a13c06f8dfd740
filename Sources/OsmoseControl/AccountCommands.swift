import ArgumentParser
import CareRecords
import Foundation
import StaffAccounts
import Store

/// Account management as the sysadmin running `osmosectl`.
private let accounts = Accounts(actor: operatorActor(.sysadmin))
/// Staff accounts (the console's DPO, security officers and sysadmins), managed by the same sysadmin.
private let staff = StaffDirectory(actor: operatorActor(.sysadmin))

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
                let (code, name) = (code, name)
                _ = try await options.withConnection { connection in
                    try await connection.transaction { connection in try accounts.createTeam(code: code, name: name, on: connection) }
                }
                print("team \(code) created")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List teams.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let teams = try await options.withConnection { connection in try await connection.perform { try Accounts.teams(on: $0) } }
                if json { try printJSON(teams) } else { printTable(["CODE", "NAME"], teams.map { [$0.code, $0.name] }) }
            }
        }
    }
}

struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "Accounts of the care service (agent, manager, admin) and of the staff console (dpo, security-officer, sysadmin).",
        discussion: "Staff accounts enrol their TOTP second factor at their first sign-in to osmose-console.",
        subcommands: [Add.self, Disable.self, List.self, ResetSecondFactor.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an account. The password is read from standard input (one line, 12 characters or more).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "Login name: lowercase letters, digits, dots, hyphens, underscores.") var username: String
        @Option(help: "agent, manager or admin (care service); dpo, security-officer or sysadmin (staff console).") var role: String
        @Option(help: "Team code (required for an agent or a manager).") var team: String?
        @Option(help: "Name shown to colleagues.") var displayName: String?

        func run() async throws {
            try await reportingFailures {
                if let staffRole = StaffRole(rawValue: role) { return try await addStaff(staffRole) }
                guard let role = Role(rawValue: role) else {
                    throw ValidationError("--role must be agent, manager, admin, dpo, security-officer or sysadmin")
                }
                guard role == .admin || team != nil else { throw ValidationError("--team is required for an agent or a manager") }
                guard let password = readLine(strippingNewline: true), !password.isEmpty else {
                    throw ValidationError("give the password on standard input")
                }
                let account = try NewAccount(
                    username: username, displayName: displayName ?? username, role: role, teamCode: team, password: password,
                    hasher: PasswordHasher(costExponent: try options.loadConfiguration().care.passwordCost))
                _ = try await options.withConnection { connection in
                    try await connection.transaction { connection in try accounts.createUser(account, on: connection) }
                }
                print("user \(username) created (\(role.rawValue)\(team.map { ", team \($0)" } ?? ""))")
            }
        }

        /// A staff account: no team; its second factor is enrolled at the first sign-in to the console.
        func addStaff(_ role: StaffRole) async throws {
            guard team == nil else { throw ValidationError("--team is for care accounts; a \(role.rawValue) has none") }
            guard let password = readLine(strippingNewline: true), !password.isEmpty else { throw ValidationError("give the password on standard input") }
            let account = try NewStaffAccount(
                username: username, displayName: displayName ?? username, role: role, password: password,
                costExponent: try options.loadConfiguration().console.passwordCost)
            _ = try await options.withConnection { connection in
                try await connection.transaction { connection in try staff.create(account, on: connection) }
            }
            print("user \(username) created (\(role.rawValue)); the TOTP second factor is enrolled at the first sign-in to osmose-console")
        }
    }

    struct ResetSecondFactor: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-second-factor",
            abstract: "Clear a staff account's TOTP second factor and recovery codes (a lost phone) and end its sessions: it enrols again at its next sign-in.")
        @OptionGroup var options: GlobalOptions
        @Argument var username: String
        @Flag(help: "Report what would change; change nothing.") var dryRun = false

        func run() async throws {
            try await reportingFailures {
                let (username, dryRun) = (username, dryRun)
                try await options.withConnection { connection in
                    try await connection.transaction { connection in try staff.resetSecondFactor(username: username, dryRun: dryRun, on: connection) }
                }
                print(dryRun ? "would reset the second factor of \(username)" : "second factor of \(username) reset: it enrols again at its next sign-in")
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
                let (username, dryRun) = (username, dryRun)
                let sessions = try await options.withConnection { connection in
                    try await connection.transaction { connection in
                        try StaffDirectory.exists(username: username, on: connection)
                            ? try staff.disable(username: username, dryRun: dryRun, on: connection)
                            : try accounts.disable(username: username, dryRun: dryRun, on: connection)
                    }
                }
                print(dryRun ? "would disable \(username) and end \(sessions) open session(s)" : "disabled \(username); ended \(sessions) open session(s)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print as JSON.") var json = false
        @Flag(help: "List the staff console's accounts (dpo, security-officer, sysadmin) instead.") var staff = false

        func run() async throws {
            try await reportingFailures {
                if staff { return try await listStaff() }
                let users = try await options.withConnection { connection in
                    try await connection.transaction { connection in try accounts.users(on: connection) }
                }
                if json {
                    try printJSON(users)
                } else {
                    printTable(
                        ["USERNAME", "ROLE", "TEAM", "STATE", "NAME"],
                        users.map { [$0.username, $0.role.rawValue, $0.team ?? "-", $0.disabled ? "disabled" : ($0.locked ? "locked" : "active"), $0.displayName] })
                }
            }
        }

        func listStaff() async throws {
            let accounts = try await options.withConnection { connection in
                try await connection.transaction { connection in try StaffAccountsList.list(on: connection) }
            }
            if json { return try printJSON(accounts) }
            printTable(
                ["USERNAME", "ROLE", "SECOND FACTOR", "STATE", "NAME"],
                accounts.map {
                    [$0.username, $0.role.rawValue, $0.enrolled ? "enrolled" : "at first sign-in", $0.disabled ? "disabled" : ($0.locked ? "locked" : "active"), $0.displayName]
                })
        }
    }
}

/// The staff directory's listing (the `staff` flag shadows the directory's name inside ``UsersCommand/List``).
private enum StaffAccountsList {
    static func list(on connection: isolated Connection) throws -> [StaffView] { try staff.list(on: connection) }
}
