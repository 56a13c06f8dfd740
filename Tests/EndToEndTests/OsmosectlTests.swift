import Foundation
import Testing
import TestSupport

@Suite("osmosectl, run as a person runs it")
struct OsmosectlTests {
    let osmosectl = builtExecutablesDirectory().appendingPathComponent("osmosectl").path

    func writeConfig(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-\(UUID().uuidString.prefix(8)).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("db migrate, then db status: applied; a second migrate changes nothing; JSON listings parse")
    func migrateAndStatus() async throws {
        try await TestDatabase.with("ctlmigrate") { database in
            let config = try writeConfig("database:\n  connection: \"\(database.connectionString)\"\n")
            defer { try? FileManager.default.removeItem(atPath: config) }
            let dryRun = try await runProgram(osmosectl, ["db", "migrate", "--dry-run", "--config", config])
            #expect(dryRun.status == 0)
            #expect(dryRun.standardOutput.contains("would apply:") && dryRun.standardOutput.contains("0001_roles_and_schemas.sql"))
            let pending = try await runProgram(osmosectl, ["db", "status", "--json", "--config", config])
            let pendingStates = try JSONSerialization.jsonObject(with: Data(pending.standardOutput.utf8)) as? [[String: Any]]
            #expect(pendingStates?.allSatisfy { $0["state"] as? String == "pending" } == true)

            let migrate = try await runProgram(osmosectl, ["db", "migrate", "--config", config])
            #expect(migrate.status == 0, "\(migrate.standardError)")
            #expect(migrate.standardOutput.contains("applied:"))
            let again = try await runProgram(osmosectl, ["db", "migrate", "--config", config])
            #expect(again.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "database schema is up to date")
            let status = try await runProgram(osmosectl, ["db", "status", "--json", "--config", config])
            #expect(status.status == 0)
            let states = try JSONSerialization.jsonObject(with: Data(status.standardOutput.utf8)) as? [[String: Any]]
            #expect(states?.isEmpty == false)
            #expect(states?.allSatisfy { $0["state"] as? String == "applied" && $0["appliedAt"] is String } == true)
        }
    }

    @Test("An invalid configuration exits 3 naming file and line; an unreachable database exits 4 on one line")
    func failures() async throws {
        let config = try writeConfig("database:\n  pool_sise: 3\n")
        defer { try? FileManager.default.removeItem(atPath: config) }
        let invalid = try await runProgram(osmosectl, ["db", "status", "--config", config])
        #expect(invalid.status == 3)
        #expect(invalid.standardError.contains("\(config):2:3: unknown setting database.pool_sise (did you mean database.pool_size?)"))
        #expect(invalid.standardError.split(separator: "\n").count == 1)

        let valid = try writeConfig("database:\n  connection: \"host=/nonexistent-osmose port=5 connect_timeout=2\"\n")
        defer { try? FileManager.default.removeItem(atPath: valid) }
        let unreachable = try await runProgram(osmosectl, ["db", "status", "--config", valid])
        #expect(unreachable.status == 4)
        #expect(unreachable.standardError.hasPrefix("osmosectl: store.connection_failed"))
        #expect(unreachable.standardError.split(separator: "\n").count == 1)

        let usage = try await runProgram(osmosectl, ["db", "migrate", "--no-such-flag"])
        #expect(usage.status == 64)
    }

    @Test("policy check accepts the shipped policies and names the line of a bad one")
    func policyCheck() async throws {
        let shipped = try await runProgram(osmosectl, ["policy", "check", repositoryRoot.appendingPathComponent("policies/retention.yaml").path])
        #expect(shipped.status == 0, "\(shipped.standardOutput)\(shipped.standardError)")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-policy-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bad = directory.appendingPathComponent("retention.yaml").path
        let shippedText = try String(contentsOf: repositoryRoot.appendingPathComponent("policies/retention.yaml"), encoding: .utf8)
        let line = try #require(shippedText.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.hasPrefix("  online_months: 12") }) + 1
        try shippedText.replacingOccurrences(of: "  online_months: 12", with: "  online_months: 48").write(toFile: bad, atomically: true, encoding: .utf8)
        let result = try await runProgram(osmosectl, ["policy", "check", "--json", bad])
        #expect(result.status == 3)
        #expect(result.standardOutput.contains("\(bad):\(line):18: journal.online_months must be from 12 to 24, not 48"), "\(result.standardOutput)")
    }

    @Test("config check hides the database password")
    func configCheck() async throws {
        let config = try writeConfig("database:\n  connection: \"host=db user=care password=s3cret! dbname=osmose\"\n")
        defer { try? FileManager.default.removeItem(atPath: config) }
        let result = try await runProgram(osmosectl, ["config", "check", "--config", config])
        #expect(result.status == 0)
        #expect(!result.standardOutput.contains("s3cret"))
        #expect(result.standardOutput.contains("password=********"))
    }

    @Test("keys add-recipient: an identity it makes is what age-keygen derives the recorded recipient from; one made by age-keygen is added by its recipient; status lists both")
    func backupRecipients() async throws {
        try await TestDatabase.with("ctlrecipients") { database in
            let config = try writeConfig("database:\n  connection: \"\(database.connectionString)\"\n")
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-recipients-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer {
                try? FileManager.default.removeItem(atPath: config)
                try? FileManager.default.removeItem(atPath: directory)
            }
            #expect(try await runProgram(osmosectl, ["db", "migrate", "--config", config]).status == 0)
            let identity = "\(directory)/identity.txt"
            let dry = try await runProgram(
                osmosectl, ["keys", "add-recipient", "--identity-out", identity, "--label", "key safe A", "--reason", "install", "--dry-run", "--config", config])
            #expect(dry.status == 0 && !FileManager.default.fileExists(atPath: identity), "\(dry.standardError)")
            let made = try await runProgram(
                osmosectl, ["keys", "add-recipient", "--identity-out", identity, "--label", "key safe A", "--reason", "install", "--config", config])
            #expect(made.status == 0, "\(made.standardError)")
            #expect(!made.standardOutput.contains("AGE-SECRET-KEY"), "the identity goes to the file only")
            #expect((try FileManager.default.attributesOfItem(atPath: identity)[.posixPermissions] as? Int) == 0o600)
            let derived = try await runProgram("/usr/bin/age-keygen", ["-y", identity])
            let recipient = derived.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(derived.status == 0 && made.standardOutput.contains(recipient), "\(made.standardOutput) vs \(recipient)")

            #expect(try await runProgram("/usr/bin/age-keygen", ["-o", "\(directory)/escrow.txt"]).status == 0)
            let escrow = try await runProgram("/usr/bin/age-keygen", ["-y", "\(directory)/escrow.txt"]).standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            let added = try await runProgram(
                osmosectl, ["keys", "add-recipient", "--recipient", escrow, "--label", "notary escrow", "--reason", "second copy", "--config", config])
            #expect(added.status == 0, "\(added.standardError)")
            let bad = try await runProgram(
                osmosectl, ["keys", "add-recipient", "--recipient", "age1notarecipient", "--label", "x", "--reason", "x", "--config", config])
            #expect(bad.status != 0 && bad.standardError.contains("age"), "\(bad.standardError)")

            let status = try await runProgram(osmosectl, ["keys", "status", "--json", "--config", config])
            let report = try JSONSerialization.jsonObject(with: Data(status.standardOutput.utf8)) as? [String: Any]
            let keys = report?["publicKeys"] as? [[String: Any]] ?? []
            #expect(Set(keys.compactMap { $0["publicKey"] as? String }) == [recipient, escrow], "\(status.standardOutput)")
            #expect(keys.allSatisfy { $0["purpose"] as? String == "backup-recipient" && $0["state"] as? String == "primary" })
            let retire = try await runProgram(osmosectl, ["keys", "retire-recipient", "1", "--reason", "replaced by the escrow", "--config", config])
            #expect(retire.status == 0 && retire.standardOutput.contains("receives no new backup"), "\(retire.standardError)")
            let last = try await runProgram(osmosectl, ["keys", "retire-recipient", "2", "--reason", "oops", "--config", config])
            #expect(last.status != 0 && last.standardError.contains("last primary"), "\(last.standardError)")
        }
    }
}
