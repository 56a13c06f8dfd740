import Age
import Foundation
import Glibc
import Store
import Testing
import TestSupport

/// osmose-dsard and `osmosectl dsar` as the DPO and systemd run them.
@Suite("osmose-dsard and osmosectl dsar, as built")
struct SubjectRequestDaemonTests {
    let bin = builtExecutablesDirectory()
    func path(_ program: String) -> String { bin.appendingPathComponent(program).path }

    func run(_ program: String, _ arguments: [String], input: String? = nil) async throws -> ProcessOutcome {
        try await runProgram(path(program), arguments, input: input)
    }

    @Test("A staff member's erasure from the command line; osmose-dsard says READY, builds the queued evidence file, stops on SIGTERM with 0; a bad configuration is 3, no database 4, no master key 6")
    func daemonAndCommands() async throws {
        try await TestDatabase.with("dsard") { database in
            let directory = "/tmp/osmose-dsard-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let admin = database.connectionString
            for arguments in [
                ["db", "migrate", "--database", admin], ["keys", "generate-master", "--out", "\(directory)/master.key"],
                ["keys", "init", "--database", admin, "--master-key", "\(directory)/master.key"], ["teams", "add", "epl", "Psychiatrie de liaison", "--database", admin],
            ] {
                let outcome = try await run("osmosectl", arguments)
                #expect(outcome.status == 0, "\(arguments): \(outcome.standardError)")
            }
            #expect(try await run("osmosectl", ["users", "add", "leo.epl", "--role", "agent", "--team", "epl", "--database", admin], input: "a password long enough\n").status == 0)
            func configuration(_ name: String, database connection: String, key: String?) throws -> String {
                let text = """
                    database:
                      connection: "\(admin)"
                    dsar:
                      database: "\(connection)"
                    \(key.map { "  master_key_file: \($0)\n" } ?? "")  check_interval: 1h
                    """
                try text.write(toFile: "\(directory)/\(name)", atomically: true, encoding: .utf8)
                return "\(directory)/\(name)"
            }
            let config = try configuration("osmose.yaml", database: "\(admin) user=osmose_dsar", key: "\(directory)/master.key")
            let malformed = try await run(
                "osmosectl",
                ["dsar", "open", "--config", config, "--kind", "erasure", "--staff", "leo.epl", "--capacity", "staff-member", "--requester-name", "Léo", "--received", "2026-13-01"])
            #expect(malformed.status == 64 && malformed.standardError.contains("--received"), "\(malformed.standardError)")
            let opened = try await run(
                "osmosectl",
                [
                    "dsar", "open", "--config", config, "--kind", "erasure", "--staff", "leo.epl", "--capacity", "staff-member", "--requester-name", "Léo Martin",
                    "--received", ISO8601DateFormatter().string(from: Date().addingTimeInterval(-3600)), "--identity-checked-by", "ressources humaines",
                    "--identity-documents", "badge n° 42",
                ])
            #expect(opened.status == 0 && opened.standardOutput.contains("request 1 (erasure, open)") && opened.standardOutput.contains("gdpr-one-month"), "\(opened.standardOutput)\(opened.standardError)")
            let proposal = try await run("osmosectl", ["dsar", "answer", "1", "--config", config])
            #expect(proposal.status == 0 && proposal.standardOutput.contains("17(3)(b)"), "\(proposal.standardOutput)")
            let active = try await run("osmosectl", ["dsar", "erase-staff", "1", "--config", config, "--dry-run"])
            #expect(active.status == 1 && active.standardError.contains("dsar.staff_active"), "\(active.standardError)")
            #expect(try await run("osmosectl", ["users", "disable", "leo.epl", "--database", admin]).status == 0)
            let dry = try await run("osmosectl", ["dsar", "erase-staff", "1", "--config", config, "--dry-run"])
            #expect(dry.status == 0 && dry.standardOutput.hasPrefix("would erase"), "\(dry.standardOutput)\(dry.standardError)")
            let listed = try await run("osmosectl", ["dsar", "list", "--config", config, "--json"])
            #expect(listed.status == 0 && listed.standardOutput.contains("\"kind\" : \"erasure\""), "\(listed.standardOutput)")

            let daemon = try NotifiedDaemon(path("osmose-dsard"), ["--config", config])
            let ready = try await daemon.notification(containing: "READY=1")
            #expect(ready.contains("STATUS="), "\(ready)")
            let identity = try AgeIdentity.generate()
            let evidence = try await run(
                "osmosectl", ["dsar", "evidence", "1", "--config", config, "--queue", "--recipient", identity.recipient.encoded, "--out", "\(directory)/evidence.age"])
            #expect(evidence.status == 0 && evidence.standardOutput.contains("0 problems"), "\(evidence.standardOutput)\(evidence.standardError)")
            let sealed = try #require(FileManager.default.contents(atPath: "\(directory)/evidence.age"))
            #expect(sealed.starts(with: Data("age-encryption.org/v1".utf8)))
            let (outcome, took) = try await daemon.terminate()
            #expect(outcome.status == 0 && took < .seconds(25), "\(outcome.standardError)")
            _ = try await daemon.notification(containing: "STOPPING=1")
            let verified = try await run("osmosectl", ["dsar", "evidence", "1", "--config", config, "--verify"])
            #expect(verified.status == 0 && verified.standardOutput.contains("chain intact"), "\(verified.standardOutput)")

            let invalid = try await run("osmose-dsard", ["--config", try { try "dsar:\n  colour: red\n".write(toFile: "\(directory)/bad.yaml", atomically: true, encoding: .utf8); return "\(directory)/bad.yaml" }()])
            #expect(invalid.status == 3 && invalid.standardError.contains("bad.yaml:2:3"), "\(invalid.standardError)")
            let noDatabase = try await run("osmose-dsard", ["--config", try configuration("nodb.yaml", database: "host=/nonexistent/osmose port=1 dbname=none", key: "\(directory)/master.key")])
            #expect(noDatabase.status == 4, "\(noDatabase.standardError)")
            let noKey = try await run("osmose-dsard", ["--config", try configuration("nokey.yaml", database: "\(admin) user=osmose_dsar", key: nil)])
            #expect(noKey.status == 6 && noKey.standardError.contains("dsar.master_key_file"), "\(noKey.standardError)")
        }
    }
}
