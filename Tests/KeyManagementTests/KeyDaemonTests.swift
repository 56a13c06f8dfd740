import CareRecords
import Foundation
import Glibc
import Journal
import KeyManagement
import Keyring
import Store
import Testing
import TestSupport

@Suite("osmose-keyd end to end", .serialized)
struct KeyDaemonTests {
    let bin = builtExecutablesDirectory()

    /// A configuration for the daemon in a directory of its own, the master key in a file.
    func configure(_ fixture: KeyFixture, master: MasterKey, valuesPerSecond: Int, logLevel: String = "warning") throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-keyd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let keyFile = "\(directory)/master.key"
        _ = FileManager.default.createFile(atPath: keyFile, contents: Data(master.exposedBytes()), attributes: [.posixPermissions: 0o600])
        try """
            cryptoperiods:
              column: 365
              blind_index: 365
              pseudonymisation: 730
            rotation:
              max_values_per_second: \(valuesPerSecond)
              batch_size: 40
            """.write(toFile: "\(directory)/keys.yaml", atomically: true, encoding: .utf8)
        try """
            database:
              connection: "\(fixture.database.connectionString)"
            logging:
              level: \(logLevel)
            keys:
              database: "\(fixture.database.connectionString) user=osmose_keyd"
              master_key_file: \(keyFile)
              policy: \(directory)/keys.yaml
            """.write(toFile: "\(directory)/osmose.yaml", atomically: true, encoding: .utf8)
        return "\(directory)/osmose.yaml"
    }

    @Test("Killed with SIGKILL until 12 kills landed mid-rotation, it resumes each time; the end state equals a crash-free run's", .tags(.crash), .skippedInFastRuns)
    func crashes() async throws {
        var random = TestSeed.generator(test: "osmose-keyd crashes")
        try await KeyFixture.with("keyd_crash", patients: 2_000) { fixture, patients in
            let admin = fixture.admin
            let total = try await admin.perform { try KeyRotation.census(.column, on: $0) }.values.flatMap(\.values).reduce(0, +)
            let rotation = try await admin.transaction { [master = fixture.master] connection in
                try KeyRotation.start(
                    purpose: .column, reason: "crash test", master: master, cryptoperiodDays: 365, actor: .operator("tests", role: .sysadmin), on: connection)
            }
            // Paced at the slowest rate the policy allows (100 values/s), over enough values that 12
            // landed kills cannot use up the rotation on a loaded machine: each landed run rewrites
            // until this test, which may see its first batch seconds late there, kills it (with 600
            // patients, ~2,600 values, a load of 40 used the rotation up after 7 rounds, 6 kills landed).
            let paced = try configure(fixture, master: fixture.master, valuesPerSecond: 100)
            let crashes = try await killMidRotation(rotation.id, config: paced, kills: 12, random: &random, on: admin)
            print("osmose-keyd crashes: \(crashes.landed) kills landed mid-rotation in \(crashes.rounds) rounds")
            #expect(crashes.landed == 12, "kills landed mid-rotation: \(crashes.landed) in \(crashes.rounds) rounds (seed \(random.seed))")
            let unpaced = try configure(fixture, master: fixture.master, valuesPerSecond: 100_000)
            let last = try await runProgram(bin.appendingPathComponent("osmose-keyd").path, ["--config", unpaced])
            #expect(last.status == 0, "\(last.standardError)")
            let finished = try await admin.query("SELECT state, rewritten FROM keys.rotations WHERE id = $1", [rotation.id]).rows[0]
            #expect(try finished.string("state") == "finished")
            #expect(try finished.int64("rewritten") == total, "every value counted once: no batch lost or applied twice")
            let census = try await admin.perform { try KeyRotation.census(.column, on: $0) }
            #expect(census.values.allSatisfy { $0.isEmpty || Set($0.keys) == [rotation.toKey] }, "\(census)")
            #expect(try await admin.query("SELECT state FROM keys.data_keys WHERE id = $1", [rotation.fromKeys[0]]).rows[0].string("state") == "retired")
            let ring = try await DataKeyRing.load(on: admin, master: fixture.master)
            for (id, view) in patients { #expect(try await admin.perform { try CareStore(ring: ring).patient(id, on: $0) } == view) }
        }
    }

    /// Starts osmose-keyd with `config` again and again (``killAfterProgress``), each
    /// time killed with SIGKILL a delay drawn from `random` after the run committed its
    /// first batch, until `kills` kills have landed mid-work: the daemon was still
    /// running, had committed a batch of `rotation` in that run, and the rotation was
    /// not finished; at most 4 × `kills` rounds.
    func killMidRotation(
        _ rotation: Int64, config: String, kills: Int, random: inout SeededGenerator, on admin: Connection
    ) async throws -> CrashRounds {
        try await killAfterProgress(
            bin.appendingPathComponent("osmose-keyd").path, ["--config", config], kills: kills, maxRounds: 4 * kills,
            delays: 0..<300, poll: .milliseconds(10), random: &random,
            progress: {
                let row = try await admin.query("SELECT state, rewritten FROM keys.rotations WHERE id = $1", [rotation]).rows[0]
                return (finished: try row.string("state") == "finished", rewritten: try row.int64("rewritten"))
            },
            isFinished: { $0.finished },
            hasStarted: { before, now in now.rewritten != before.rewritten },
            landedMidWork: { before, after in after.rewritten != before.rewritten && !after.finished })
    }

    @Test("A wrong or missing master key: the daemon refuses to start with a clear message and changes nothing")
    func wrongMasterKey() async throws {
        try await KeyFixture.with("keyd_master", patients: 2) { fixture, _ in
            let before = try await fixture.admin.query("SELECT id, state, wrapped_key FROM keys.data_keys ORDER BY id").rows.map { try "\($0.int("id")) \($0.string("state")) \($0.bytes("wrapped_key"))" }
            let wrong = try configure(fixture, master: try MasterKey.generate(), valuesPerSecond: 1000)
            let refused = try await runProgram(bin.appendingPathComponent("osmose-keyd").path, ["--config", wrong])
            #expect(refused.status == 6 && refused.standardError.contains("keyring.wrong_master_key"), "\(refused.standardError)")
            let missing = try configure(fixture, master: fixture.master, valuesPerSecond: 1000)
            try FileManager.default.removeItem(atPath: (missing as NSString).deletingLastPathComponent + "/master.key")
            let absent = try await runProgram(bin.appendingPathComponent("osmose-keyd").path, ["--config", missing])
            #expect(absent.status == 6 && absent.standardError.contains("master key"), "\(absent.standardError)")
            let after = try await fixture.admin.query("SELECT id, state, wrapped_key FROM keys.data_keys ORDER BY id").rows.map { try "\($0.int("id")) \($0.string("state")) \($0.bytes("wrapped_key"))" }
            #expect(before == after)
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM keys.rotations").rows[0].int("n") == 0)
        }
    }

    @Test("Key material never appears in osmose-keyd's or osmosectl's output, even at trace level and in errors")
    func noKeyMaterialInOutput() async throws {
        try await KeyFixture.with("keyd_secrets", patients: 20) { fixture, _ in
            let config = try configure(fixture, master: fixture.master, valuesPerSecond: 100_000, logLevel: "trace")
            let directory = (config as NSString).deletingLastPathComponent
            let keyFile = "\(directory)/master.key"
            let osmosectl = bin.appendingPathComponent("osmosectl").path
            var outputs: [ProcessOutcome] = []
            for arguments in [
                ["keys", "status", "--json"], ["keys", "rotate", "--purpose", "column", "--reason", "test", "--master-key", keyFile, "--dry-run"],
                ["keys", "rotate", "--purpose", "column", "--reason", "test", "--master-key", keyFile],
                ["keys", "rotate-master", "--master-key", keyFile, "--new-master-key", keyFile, "--reason", "refused: same key"],
                ["keys", "destroy", "1", "--reason", "test", "--dry-run", "--json"],
            ] {
                outputs.append(try await runProgram(osmosectl, arguments + ["--config", config]))
            }
            outputs.append(try await runProgram(bin.appendingPathComponent("osmose-keyd").path, ["--config", config]))
            let wrong = try configure(fixture, master: try MasterKey.generate(), valuesPerSecond: 100_000, logLevel: "trace")
            let wrongKey = try Data(contentsOf: URL(fileURLWithPath: (wrong as NSString).deletingLastPathComponent + "/master.key"))
            outputs.append(try await runProgram(bin.appendingPathComponent("osmose-keyd").path, ["--config", wrong]))
            #expect(outputs.last?.status == 6)
            #expect(outputs[2].status == 0 && outputs[5].status == 0, "\(outputs[2].standardError)\(outputs[5].standardError)")
            let text = outputs.map { $0.standardOutput + $0.standardError }.joined(separator: "\n")
            #expect(text.contains("rotation finished"), "the trace-level output of a whole rotation was examined")
            for key in [Data(fixture.master.exposedBytes()), wrongKey] {
                let forms = [
                    key.map { String(format: "%02x", $0) }.joined(), key.map { String(format: "%02X", $0) }.joined(), key.base64EncodedString(),
                    String(decoding: key, as: UTF8.self),
                ]
                for form in forms { #expect(!text.contains(form), "a master key appears in the output") }
                // Also any 8-byte run of it, in hex, in case it were printed in pieces.
                let hex = forms[0]
                for start in stride(from: 0, to: hex.count - 16, by: 8) {
                    let piece = String(hex.dropFirst(start).prefix(16))
                    #expect(!text.lowercased().contains(piece), "a piece of a master key appears in the output")
                }
            }
        }
    }
}
