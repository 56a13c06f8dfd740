import CareRecords
import Foundation
import Journal
import Store
import Testing
import TestSupport

@Suite("Account management in PostgreSQL")
struct AccountsTests {
    let accounts = Accounts(actor: .operator("root@host via osmosectl test", role: .sysadmin))
    let hasher = PasswordHasher(costExponent: 10)

    /// The account events journaled so far: object type, reason (or the action), role and source.
    func events(_ connection: Connection) async throws -> [String] {
        try await connection.query(
            """
            SELECT object_type || ' ' || coalesce(reason, action) || ' ' || actor_role || ' ' || source || ' ' || actor_username AS what
            FROM journal.intake ORDER BY id
            """
        ).rows.map { try $0.string("what") }
    }

    @Test("Teams and accounts are created with their events in the same transaction; a refused change journals nothing")
    func create() async throws {
        try await TestDatabase.with("accounts") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await migrate(connection)
            let accounts = self.accounts
            let team = try await connection.transaction { try accounts.createTeam(code: "sau", name: "Urgences", on: $0) }
            _ = try await connection.transaction { try accounts.createTeam(code: "epl", name: "Psychiatrie de liaison", on: $0) }
            let duplicate = await #expect(throws: StoreError.self) {
                try await connection.transaction { try accounts.createTeam(code: "sau", name: "Encore", on: $0) }
            }
            #expect(duplicate?.isUniqueViolation == true)
            let teams = try await connection.perform { try Accounts.teams(on: $0) }
            #expect(teams.map(\.code) == ["epl", "sau"] && teams.map(\.name) == ["Psychiatrie de liaison", "Urgences"])
            let teamEvent = try await connection.query("SELECT object_id FROM journal.intake WHERE object_type = 'team' ORDER BY id LIMIT 1").rows[0]
            #expect(try teamEvent.string("object_id") == team.uuidString.lowercased())

            let camille = try NewAccount(
                username: "camille", displayName: "Camille M.", role: .agent, teamCode: "sau", password: "a long enough password", hasher: hasher)
            let admin = try NewAccount(username: "admin", displayName: "admin", role: .admin, teamCode: nil, password: "the admin password", hasher: hasher)
            _ = try await connection.transaction { try accounts.createUser(camille, on: $0) }
            _ = try await connection.transaction { try accounts.createUser(admin, on: $0) }
            let unknownTeam = try NewAccount(username: "eve", displayName: "Eve", role: .agent, teamCode: "nope", password: "another long password", hasher: hasher)
            let refused = await #expect(throws: CareError.self) { try await connection.transaction { try accounts.createUser(unknownTeam, on: $0) } }
            #expect(refused?.code == .notFound)
            #expect(throws: CareError.self, "too short") {
                try NewAccount(username: "bob", displayName: "Bob", role: .agent, teamCode: "sau", password: "short", hasher: hasher)
            }

            let stored = try await connection.query("SELECT password_hash, team_id FROM care.users WHERE username = 'camille'").rows[0]
            #expect(PasswordHasher.verify("a long enough password", against: try stored.string("password_hash")))
            #expect(try stored.uuid("team_id") == team)
            let users = try await connection.transaction { try accounts.users(on: $0) }
            #expect(users.map(\.username) == ["admin", "camille"] && users.map(\.team) == [nil, "sau"])
            #expect(
                try await events(connection) == [
                    "team user-admin sysadmin osmosectl root@host", "team user-admin sysadmin osmosectl root@host",
                    "user created sysadmin osmosectl root@host", "user created sysadmin osmosectl root@host", "user-list read sysadmin osmosectl root@host",
                ])
            await connection.close()
        }
    }

    @Test("Disabling counts and ends the account's sessions and journals it; a dry run changes and journals nothing")
    func disable() async throws {
        try await TestDatabase.with("accountsdisable") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await migrate(connection)
            let accounts = self.accounts
            let account = try NewAccount(
                username: "camille", displayName: "Camille", role: .agent, teamCode: "sau", password: "a long enough password", hasher: hasher)
            try await connection.transaction { connection in
                try accounts.createTeam(code: "sau", name: "Urgences", on: connection)
                try accounts.createUser(account, on: connection)
            }
            let sessions = Sessions(settings: SessionSettings())
            let tokens = try await connection.transaction { connection in
                let candidate = try #require(try sessions.candidate(username: "camille", on: connection))
                return [try sessions.open(for: candidate, on: connection).token, try sessions.open(for: candidate, on: connection).token]
            }
            try await connection.transaction { try sessions.close(token: tokens[1], on: $0) }
            let before = try await events(connection).count

            #expect(try await connection.transaction { try accounts.disable(username: "camille", dryRun: true, on: $0) } == 1)
            #expect(try await connection.perform { try sessions.authenticate(token: tokens[0], on: $0) }.username == "camille", "the dry run ended nothing")
            #expect(try await events(connection).count == before)

            #expect(try await connection.transaction { try accounts.disable(username: "camille", dryRun: false, on: $0) } == 1)
            let ended = await #expect(throws: CareError.self) { try await connection.perform { try sessions.authenticate(token: tokens[0], on: $0) } }
            #expect(ended?.code == .invalidToken)
            let open = try await connection.query("SELECT count(*) AS n FROM care.sessions WHERE revoked_at IS NULL").rows[0].int("n")
            #expect(open == 0)
            #expect(try await connection.transaction { try accounts.users(on: $0) }.first?.disabled == true)
            #expect(try await events(connection).dropFirst(before).first == "user disabled sysadmin osmosectl root@host")

            let unknown = await #expect(throws: CareError.self) { try await connection.transaction { try accounts.disable(username: "nobody", dryRun: false, on: $0) } }
            #expect(unknown?.code == .notFound)
            await connection.close()
        }
    }
}
