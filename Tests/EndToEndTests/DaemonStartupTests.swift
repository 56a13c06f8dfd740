import Age
import Foundation
import Glibc
import Store
import Testing
import TestSupport

/// What every daemon shares (DaemonRuntime): it starts, says READY, stops on SIGTERM
/// within its deadline (below the units' TimeoutStopSec=30s) with status 0, and ends
/// with the documented status when its configuration, database or key is wrong.
@Suite("The daemons' shared start-up, as systemd runs them")
struct DaemonStartupTests {
    let bin = builtExecutablesDirectory()
    /// ShutdownDeadline.total: graceful shutdown, then cancellation.
    let deadline = Duration.seconds(25)
    /// A connection string no server answers at.
    static let unreachable = "host=/nonexistent/osmose port=1 dbname=none"

    func path(_ program: String) -> String { bin.appendingPathComponent(program).path }

    func osmosectl(_ arguments: [String], input: String? = nil) async throws {
        let outcome = try await runProgram(path("osmosectl"), arguments, input: input)
        #expect(outcome.status == 0, "osmosectl \(arguments.joined(separator: " ")): \(outcome.standardError)")
    }

    /// A fresh directory for a test's files.
    func directory(_ name: String) throws -> String {
        let directory = "/tmp/osmose-\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// `text` written to `directory/name`; returns the path.
    func write(_ text: String, _ directory: String, _ name: String) throws -> String {
        try text.write(toFile: "\(directory)/\(name)", atomically: true, encoding: .utf8)
        return "\(directory)/\(name)"
    }

    @Test(
        "--help names the daemon's exit statuses from the one table; --version its version; a wrong option is 64",
        arguments: [
            ("osmose-care", ["0", "1", "3", "4", "6"]), ("osmose-journald", ["0", "1", "3", "4", "5", "6"]),
            ("osmose-keyd", ["0", "1", "3", "4", "6"]), ("osmose-backupd", ["0", "1", "3", "5", "6"]), ("osmose-retentiond", ["0", "1", "3", "4", "5", "6"]),
            ("osmose-dsard", ["0", "1", "3", "4", "6"]),
        ])
    func help(_ program: String, _ statuses: [String]) async throws {
        let help = try await runProgram(path(program), ["--help"])
        #expect(help.status == 0)
        #expect(help.standardOutput.contains("USAGE: \(program)"), "\(help.standardOutput)")
        #expect(help.standardOutput.contains("Configuration: --config, else $OSMOSE_CONFIG, else /etc/osmose/osmose.yaml."))
        let section = try #require(help.standardOutput.components(separatedBy: "EXIT STATUS\n").last, "\(help.standardOutput)")
        // One line a status, "  N   meaning" (a long meaning wraps onto lines of its own).
        let listed = section.split(separator: "\n", omittingEmptySubsequences: false).prefix { !$0.isEmpty }
            .filter { $0.hasPrefix("  ") && $0.dropFirst(2).first?.isNumber == true }.map { String($0.split(separator: " ")[0]) }
        #expect(listed == statuses + ["64"], "\(section)")
        let version = try await runProgram(path(program), ["--version"])
        #expect(version.status == 0 && version.standardOutput.hasPrefix("\(program) 0."), "\(version.standardOutput)")
        let wrong = try await runProgram(path(program), ["--no-such-option"])
        #expect(wrong.status == 64, "\(wrong.standardError)")
    }

    @Test("osmose-journald: READY, then SIGTERM stops it with STOPPING and 0 within the deadline; a bad configuration is 3, no database 4, no signing key 6")
    func journald() async throws {
        try await TestDatabase.with("startjournald") { database in
            let directory = try directory("start-jd")
            try await osmosectl(["db", "migrate", "--database", database.connectionString])
            try await osmosectl(["journal", "keygen", "--origin", "journal.start.example", "--out", "\(directory)/signing.key"])
            func configuration(_ name: String, database connection: String, key: String) throws -> String {
                try write(
                    """
                    database:
                      connection: "\(database.connectionString)"
                    journal:
                      origin: journal.start.example
                      database: "\(connection)"
                      signing_key_file: \(key)
                      checkpoint_within: 200ms
                      witness_directories: [\(directory)/witness]
                    """, directory, name)
            }
            let good = try configuration("osmose.yaml", database: "\(database.connectionString) user=osmose_journald", key: "\(directory)/signing.key")

            let daemon = try NotifiedDaemon(path("osmose-journald"), ["--config", good])
            let ready = try await daemon.notification(containing: "READY=1")
            #expect(ready.contains("STATUS=journal at "), "\(ready)")
            let (outcome, took) = try await daemon.terminate()
            #expect(outcome.status == 0, "\(outcome.standardError)")
            #expect(took < deadline)
            _ = try await daemon.notification(containing: "STOPPING=1")

            let invalid = try await runProgram(path("osmose-journald"), ["--config", try write("journal:\n  colour: red\n", directory, "bad.yaml")])
            #expect(invalid.status == 3 && invalid.standardError.contains("osmose-journald: \(directory)/bad.yaml:2:3:"), "\(invalid.standardError)")
            #expect(invalid.standardError.split(separator: "\n").count == 1)
            let noDatabase = try await runProgram(
                path("osmose-journald"), ["--config", try configuration("nodb.yaml", database: Self.unreachable, key: "\(directory)/signing.key")])
            #expect(noDatabase.status == 4 && noDatabase.standardError.contains("store.connection_failed"), "\(noDatabase.standardError)")
            let noKey = try await runProgram(
                path("osmose-journald"), ["--config", try configuration("nokey.yaml", database: database.connectionString, key: "\(directory)/absent.key")])
            #expect(noKey.status == 6 && noKey.standardError.contains("journal.signing_key"), "\(noKey.standardError)")
        }
    }

    @Test("osmose-keyd: READY, then SIGTERM stops a rotation after its current batch with 0 within the deadline, and the next start finishes it; a bad configuration is 3, no database 4, no master key 6")
    func keyd() async throws {
        try await TestDatabase.with("startkeyd") { database in
            let directory = try directory("start-keyd")
            let admin = database.connectionString
            try await osmosectl(["db", "migrate", "--database", admin])
            try await osmosectl(["keys", "generate-master", "--out", "\(directory)/master.key"])
            try await osmosectl(["keys", "init", "--database", admin, "--master-key", "\(directory)/master.key"])
            try await osmosectl(["teams", "add", "sau", "Urgences", "--database", admin])
            try await osmosectl(["users", "add", "agent.sau", "--role", "agent", "--team", "sau", "--database", admin], input: "agent-password-0123\n")
            let seed = try await runProgram(path("osmose-keys-bench"), ["seed", "300", "--database", admin, "--master-key", "\(directory)/master.key"])
            #expect(seed.status == 0, "\(seed.standardError)")
            func configuration(_ name: String, valuesPerSecond: Int, database connection: String, key: String) throws -> String {
                // The shipped policy, paced so that a rotation lasts a few seconds.
                let shipped = try String(contentsOf: repositoryRoot.appendingPathComponent("policies/keys.yaml"), encoding: .utf8)
                let paced = shipped.replacingOccurrences(of: "max_values_per_second: 50000", with: "max_values_per_second: \(valuesPerSecond)")
                    .replacingOccurrences(of: "batch_size: 2000", with: "batch_size: 40")
                #expect(paced.contains("max_values_per_second: \(valuesPerSecond)") && paced.contains("batch_size: 40"))
                let policy = try write(paced, directory, "keys-\(name)")
                return try write(
                    """
                    database:
                      connection: "\(admin)"
                    logging:
                      level: warning
                    keys:
                      database: "\(connection)"
                      master_key_file: \(key)
                      policy: \(policy)
                    """, directory, name)
            }
            let keydRole = "\(admin) user=osmose_keyd"
            let slow = try configuration("slow.yaml", valuesPerSecond: 200, database: keydRole, key: "\(directory)/master.key")
            try await osmosectl(["keys", "rotate", "--purpose", "column", "--reason", "start-up test", "--master-key", "\(directory)/master.key", "--config", slow])
            let connection = try await Connection.connect(admin, logger: testLogger)
            func rotation() async throws -> (state: String, rewritten: Int) {
                let row = try await connection.query("SELECT state, rewritten FROM keys.rotations ORDER BY id DESC LIMIT 1").rows[0]
                return (try row.string("state"), try row.int("rewritten"))
            }

            let daemon = try NotifiedDaemon(path("osmose-keyd"), ["--config", slow])
            let ready = try await daemon.notification(containing: "READY=1")
            #expect(ready.contains("STATUS=checking key schedules"), "\(ready)")
            try await waitUntil("a first batch rewritten") { try await rotation().rewritten > 0 }
            let (outcome, took) = try await daemon.terminate()
            #expect(outcome.status == 0, "\(outcome.standardError)")
            #expect(took < deadline)
            let stopping = try await daemon.notification(containing: "STATUS=stopped; the next start resumes")
            #expect(stopping.contains("STOPPING=1"), "\(stopping)")
            let stopped = try await rotation()
            #expect(stopped.state == "running" && stopped.rewritten > 0, "stopped mid-rotation: \(stopped)")

            let fast = try configuration("fast.yaml", valuesPerSecond: 100_000, database: keydRole, key: "\(directory)/master.key")
            let resumed = try await runProgram(path("osmose-keyd"), ["--config", fast])
            #expect(resumed.status == 0, "\(resumed.standardError)")
            let finished = try await rotation()
            #expect(finished.state == "finished" && finished.rewritten > stopped.rewritten, "the next start resumed and finished: \(finished)")

            let invalid = try await runProgram(path("osmose-keyd"), ["--config", try write("keys:\n  colour: red\n", directory, "bad.yaml")])
            #expect(invalid.status == 3 && invalid.standardError.contains("\(directory)/bad.yaml:2:3:"), "\(invalid.standardError)")
            let noDatabase = try await runProgram(
                path("osmose-keyd"),
                ["--config", try configuration("nodb.yaml", valuesPerSecond: 1000, database: Self.unreachable, key: "\(directory)/master.key")])
            #expect(noDatabase.status == 4 && noDatabase.standardError.contains("store.connection_failed"), "\(noDatabase.standardError)")
            let noKey = try await runProgram(
                path("osmose-keyd"), ["--config", try configuration("nokey.yaml", valuesPerSecond: 1000, database: keydRole, key: "\(directory)/absent.key")])
            #expect(noKey.status == 6 && noKey.standardError.contains("keyring.master_key_unavailable"), "\(noKey.standardError)")
            await connection.close()
        }
    }

    @Test("osmose-backupd: a bad configuration is 3 for every subcommand, a missing setting it needs 3, with one line")
    func backupd() async throws {
        let directory = try directory("start-backupd")
        let invalid = try write("backup:\n  colour: red\n", directory, "bad.yaml")
        for arguments in [["full"], ["incremental"], ["prune"], ["copy"], ["wal-push", "/tmp/x", "x"], ["wal-fetch", "x", "/tmp/x"]] {
            let refused = try await runProgram(path("osmose-backupd"), arguments + ["--config", invalid])
            #expect(refused.status == 3, "\(arguments): \(refused.standardError)")
            #expect(refused.standardError.hasPrefix("osmose-backupd: \(invalid):2:3:"), "\(refused.standardError)")
            #expect(refused.standardError.split(separator: "\n").count == 1)
        }
        let empty = try write("backup:\n  store: \(directory)/store\n", directory, "empty.yaml")
        let noRecipients = try await runProgram(path("osmose-backupd"), ["wal-push", "/tmp/x", "x", "--config", empty])
        #expect(noRecipients.status == 3 && noRecipients.standardError == "osmose-backupd: backup.recipients is empty: nothing to encrypt to\n", "\(noRecipients.standardError)")
        let noCopies = try await runProgram(path("osmose-backupd"), ["copy", "--config", empty])
        #expect(noCopies.status == 3 && noCopies.standardError == "osmose-backupd: backup.copies is empty: no copy location configured\n", "\(noCopies.standardError)")
        // Nothing is written unsigned: without a backup-signing key, 6, naming where the key is looked for.
        let recipient = try AgeIdentity.generate().recipient.encoded
        let unsigned = try write("backup:\n  store: \(directory)/store\n  recipients: [\"\(recipient)\"]\n  copies: [\(directory)/copy]\n", directory, "unsigned.yaml")
        for arguments in [["full"], ["incremental"], ["prune"], ["copy"], ["wal-push", "/tmp/x", "000000010000000000000001"]] {
            let refused = try await runProgram(path("osmose-backupd"), arguments + ["--config", unsigned])
            #expect(refused.status == 6 && refused.standardError.contains("no backup-signing key: pass the backup-signing-key credential"), "\(arguments): \(refused.standardError)")
            #expect(refused.standardError.split(separator: "\n").count == 1)
        }
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/store/wal"), "nothing written")
        // wal-fetch without any verifier key to check with: 3.
        let noVerifier = try await runProgram(path("osmose-backupd"), ["wal-fetch", "x", "/tmp/x", "--identity", "/dev/null", "--config", unsigned])
        #expect(noVerifier.status == 3 && noVerifier.standardError.contains("backup.verifier_keys is empty"), "\(noVerifier.standardError)")
    }
}
