import Foundation
import Testing
import Store
import TestSupport

@Suite("osmosectl teams, users and keys, as the sysadmin uses them")
struct AccountCommandTests {
    let osmosectl = builtExecutablesDirectory().appendingPathComponent("osmosectl").path

    @Test("Create a team and users; disable one with a dry run first; every change is journaled")
    func accounts() async throws {
        try await TestDatabase.with("ctlusers") { database in
            let db = ["--database", database.connectionString]
            #expect(try await runProgram(osmosectl, ["db", "migrate"] + db).status == 0)
            #expect(try await runProgram(osmosectl, ["teams", "add", "sau", "Urgences"] + db).status == 0)
            let duplicate = try await runProgram(osmosectl, ["teams", "add", "sau", "Encore"] + db)
            #expect(duplicate.status == 4)
            #expect(duplicate.standardError.contains("23505"))
            let admin = try await runProgram(osmosectl, ["users", "add", "admin", "--role", "admin"] + db, input: "a long enough admin password\n")
            #expect(admin.status == 0, "\(admin.standardError)")
            let agent = try await runProgram(osmosectl, ["users", "add", "camille", "--role", "agent", "--team", "sau"] + db, input: "another long password\n")
            #expect(agent.status == 0, "\(agent.standardError)")
            let short = try await runProgram(osmosectl, ["users", "add", "bob", "--role", "agent", "--team", "sau"] + db, input: "short\n")
            #expect(short.status != 0)
            #expect(short.standardError.contains("12 to 256 characters"))
            let noTeam = try await runProgram(osmosectl, ["users", "add", "eve", "--role", "agent"] + db, input: "another long password\n")
            #expect(noTeam.status == 64)

            let dryRun = try await runProgram(osmosectl, ["users", "disable", "camille", "--dry-run"] + db)
            #expect(dryRun.standardOutput.contains("would disable camille"))
            let listed = try await runProgram(osmosectl, ["users", "list", "--json"] + db)
            let users = try JSONSerialization.jsonObject(with: Data(listed.standardOutput.utf8)) as? [[String: Any]]
            #expect(users?.first { $0["username"] as? String == "camille" }?["disabled"] as? Bool == false)
            #expect(!listed.standardOutput.contains("scrypt"), "no password hash is ever listed")

            #expect(try await runProgram(osmosectl, ["users", "disable", "camille"] + db).status == 0)
            let after = try await runProgram(osmosectl, ["users", "list", "--json"] + db)
            let disabled = try JSONSerialization.jsonObject(with: Data(after.standardOutput.utf8)) as? [[String: Any]]
            #expect(disabled?.first { $0["username"] as? String == "camille" }?["disabled"] as? Bool == true)

            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            let reasons = try await connection.query(
                "SELECT coalesce(reason, action) AS what FROM journal.intake WHERE source = 'osmosectl' AND object_type = 'user' ORDER BY id"
            ).rows.map { try $0.string("what") }
            #expect(reasons == ["created", "created", "disabled"], "the dry run journaled nothing; each change one event")
            await connection.close()
        }
    }
}
