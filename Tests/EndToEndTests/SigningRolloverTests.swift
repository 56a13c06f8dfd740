import Foundation
import Glibc
import Journal
import Store
import Testing
import TestSupport

/// The journal signing key rolled over twice with the real programs: osmosectl
/// starts each rollover, osmose-journald co-signs, osmose-keyd promotes and retires.
@Suite("Journal signing-key rollover end to end", .serialized)
struct SigningRolloverTests {
    let bin = builtExecutablesDirectory()
    static let origin = "journal.rollover.example"

    struct Setup {
        let database: TestDatabase
        let directory: String
        let config: String
        let admin: Connection
    }

    /// Writes the configuration: journald loads `signingKeys`, verify trusts `verifierKeys`.
    func writeConfig(_ setup: (database: TestDatabase, directory: String), signingKeys: [String], verifierKeys: [String]) throws -> String {
        let config = "\(setup.directory)/osmose.yaml"
        try """
            database:
              connection: "\(setup.database.connectionString)"
            logging:
              level: warning
            journal:
              origin: \(Self.origin)
              database: "\(setup.database.connectionString) user=osmose_journald"
              signing_key_files: [\(signingKeys.map { "\(setup.directory)/\($0)" }.joined(separator: ", "))]
              verifier_keys: [\(verifierKeys.map { "\"\($0)\"" }.joined(separator: ", "))]
              checkpoint_within: 100ms
              witness_directories: [\(setup.directory)/witness]
            keys:
              database: "\(setup.database.connectionString) user=osmose_keyd"
              master_key_file: \(setup.directory)/master.key
              policy: \(setup.directory)/keys.yaml
            """.write(toFile: config, atomically: true, encoding: .utf8)
        return config
    }

    func osmosectl(_ config: String, _ arguments: [String]) async throws -> ProcessOutcome {
        try await runProgram(bin.appendingPathComponent("osmosectl").path, arguments + ["--config", config])
    }

    /// Records `count` care events and waits until a checkpoint covers them.
    func journal(_ count: Int, _ admin: Connection, tag: String) async throws {
        let events = (0..<count).map { index in
            var event = AccessEvent(source: "osmose-care", requestID: "\(tag)-\(index)", action: .read, objectType: "patient", result: .success)
            event.patientID = UUID()
            event.purpose = .care
            return event
        }
        try await admin.transaction { connection in try connection.record(events) }
        try await waitUntil("\(tag) checkpointed") {
            let row = try await admin.query(
                "SELECT (SELECT count(*) FROM journal.intake) AS waiting, (SELECT coalesce(max(tree_size), 0) FROM journal.checkpoints) AS covered, (SELECT tree_size FROM journal.head) AS size"
            ).rows[0]
            return try row.int("waiting") == 0 && row.int("covered") == row.int("size")
        }
    }

    func startJournald(_ config: String) async throws -> BackgroundProcess {
        let notify = try DatagramSocket()
        let daemon = try BackgroundProcess(bin.appendingPathComponent("osmose-journald").path, ["--config", config], environment: ["NOTIFY_SOCKET": notify.address])
        _ = try await offThePool { [notify] in notify.receive() }
        return daemon
    }

    func stop(_ daemon: BackgroundProcess) async throws {
        daemon.signal(SIGTERM)
        let outcome = try await daemon.wait()
        #expect(outcome.status == 0, "\(outcome.standardError)")
    }

    func states(_ admin: Connection) async throws -> [String] {
        try await admin.query("SELECT state FROM keys.public_keys WHERE purpose = 'journal-signing' ORDER BY id").rows.map { try $0.string("state") }
    }

    func latestSignatureCount(_ admin: Connection) async throws -> Int {
        let note = try await admin.query("SELECT note FROM journal.checkpoints ORDER BY id DESC LIMIT 1").rows[0].string("note")
        return note.components(separatedBy: "\n\u{2014} ").count - 1
    }

    @Test("A journal spanning two rollovers verifies end to end, with our verifier and an independent C2SP one given all verifier keys; a retired key cannot vouch for later checkpoints")
    func twoRollovers() async throws {
        try await TestDatabase.with("rollover") { database in
            let directory = "/tmp/osmose-roll-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let place = (database: database, directory: directory)
            try """
                cryptoperiods:
                  column: 365
                  blind_index: 365
                  pseudonymisation: 730
                  journal_signing: 730
                journal_signing:
                  co_signing_hours: 0
                """.write(toFile: "\(directory)/keys.yaml", atomically: true, encoding: .utf8)
            let keygen = try await runProgram(
                bin.appendingPathComponent("osmosectl").path, ["journal", "keygen", "--origin", Self.origin, "--out", "\(directory)/a.key"])
            let keyA = keygen.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            var config = try writeConfig(place, signingKeys: ["a.key"], verifierKeys: [keyA])
            #expect(try await osmosectl(config, ["db", "migrate"]).status == 0)
            #expect(try await runProgram(bin.appendingPathComponent("osmosectl").path, ["keys", "generate-master", "--out", "\(directory)/master.key"]).status == 0)
            #expect(try await osmosectl(config, ["keys", "init", "--master-key", "\(directory)/master.key"]).status == 0)
            let admin = try await Connection.connect(database.connectionString, logger: testLogger)

            // Before any key is recorded, a rollover is refused with a clear reason.
            let early = try await osmosectl(config, ["keys", "rotate", "--purpose", "journal-signing", "--key-out", "\(directory)/x.key", "--reason", "too early"])
            #expect(early.status != 0 && early.standardError.contains("start osmose-journald once"), "\(early.standardError)")
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/x.key"))

            // Key A: adopted as the primary at the first start.
            var journald = try await startJournald(config)
            try await journal(120, admin, tag: "a")
            #expect(try await states(admin) == ["primary"])
            #expect(try await latestSignatureCount(admin) == 1)

            var verifierKeys = [keyA]
            for (round, (old, new)) in [("a", "b"), ("b", "c")].enumerated() {
                // The rollover starts: the new key is pending, its file written 0600.
                let dry = try await osmosectl(
                    config, ["keys", "rotate", "--purpose", "journal-signing", "--key-out", "\(directory)/\(new).key", "--reason", "drill", "--dry-run"])
                #expect(dry.status == 0 && !FileManager.default.fileExists(atPath: "\(directory)/\(new).key"), "\(dry.standardError)")
                let rotate = try await osmosectl(
                    config, ["keys", "rotate", "--purpose", "journal-signing", "--key-out", "\(directory)/\(new).key", "--reason", "rollover drill \(round + 1)"])
                #expect(rotate.status == 0, "\(rotate.standardError)")
                let newKey = try #require(rotate.standardOutput.split(separator: "\n").first { $0.hasPrefix("verifier key: ") }).dropFirst(14).description
                let attributes = try FileManager.default.attributesOfItem(atPath: "\(directory)/\(new).key")
                #expect((attributes[.posixPermissions] as? Int) == 0o600)
                let twice = try await osmosectl(
                    config, ["keys", "rotate", "--purpose", "journal-signing", "--key-out", "\(directory)/\(new)2.key", "--reason", "again"])
                #expect(twice.status != 0 && twice.standardError.contains("already pending"), "\(twice.standardError)")
                verifierKeys.append(newKey)

                // osmose-keyd does not promote a key no checkpoint carries yet.
                #expect(try await runProgram(bin.appendingPathComponent("osmose-keyd").path, ["--config", config]).status == 0)
                #expect(try await states(admin).suffix(2) == ["primary", "pending"])

                // osmose-journald restarted with both keys: checkpoints carry both signatures.
                try await stop(journald)
                config = try writeConfig(place, signingKeys: ["\(old).key", "\(new).key"], verifierKeys: verifierKeys)
                journald = try await startJournald(config)
                try await journal(90, admin, tag: "\(new)-cosigned")
                #expect(try await latestSignatureCount(admin) == 2)

                // osmose-keyd promotes the new key and, with no overlap configured, retires the old one.
                let keyd = try await runProgram(bin.appendingPathComponent("osmose-keyd").path, ["--config", config])
                #expect(keyd.status == 0, "\(keyd.standardError)")
                #expect(try await states(admin).suffix(2) == ["retired", "primary"])
                try await journal(75, admin, tag: "\(new)-alone")
                #expect(try await latestSignatureCount(admin) == 1)

                // The old key's credential removed.
                try await stop(journald)
                config = try writeConfig(place, signingKeys: ["\(new).key"], verifierKeys: verifierKeys)
                journald = try await startJournald(config)
                try await journal(60, admin, tag: "\(new)-restarted")
            }
            try await stop(journald)

            // Every change is in the journal, as key-admin events about journal-signing-key.
            let changes = try await osmosectl(config, ["journal", "search", "--action", "key-admin", "--json"])
            let events = try JSONSerialization.jsonObject(with: Data(changes.standardOutput.utf8)) as? [[String: Any]] ?? []
            let reasons = events.filter { $0["objectType"] as? String == "journal-signing-key" }.compactMap { $0["reason"] as? String }
            #expect(reasons.filter { $0.hasPrefix("adopted") }.count == 1, "\(reasons)")
            #expect(reasons.filter { $0.hasPrefix("added as pending") }.count == 2)
            #expect(reasons.filter { $0.hasPrefix("promoted to primary") }.count == 2)
            #expect(reasons.filter { $0.hasPrefix("retired") }.count == 2)

            // Our verifier: all three keys pass; any subset fails, naming the first checkpoint it cannot vouch for.
            let verify = try await osmosectl(config, ["journal", "verify"])
            #expect(verify.status == 0 && verify.standardOutput.contains("journal verified: OK"), "\(verify.standardOutput)\(verify.standardError)")
            let onlyA = try await osmosectl(config, ["journal", "verify", "--key", verifierKeys[0]])
            #expect(onlyA.status == 5 && onlyA.standardOutput.contains("checkpoint_signature"), "\(onlyA.standardOutput)")
            #expect(onlyA.standardError.contains("the keyring records signing key \(verifierKeys[1])"), "\(onlyA.standardError)")
            let lateKeys = try await osmosectl(config, ["journal", "verify", "--key", verifierKeys[1], "--key", verifierKeys[2]])
            #expect(lateKeys.status == 5 && lateKeys.standardError.contains("first bad sequence number: 0"), "\(lateKeys.standardError)")

            // The independent C2SP verifier, given every verifier key: every checkpoint signed, each consistent with the one before.
            let history = "\(directory)/history"
            try FileManager.default.createDirectory(atPath: history, withIntermediateDirectories: true)
            let ids = try await admin.query("SELECT id FROM journal.checkpoints ORDER BY id").rows.map { try $0.int64("id") }
            for id in ids {
                let name = String(format: "%@/%06d", history, id)
                try (try await osmosectl(config, ["journal", "checkpoint", "--id", "\(id)"])).standardOutput.write(toFile: name + ".note", atomically: true, encoding: .utf8)
                if id > 1 {
                    let proof = try await osmosectl(config, ["journal", "prove", "consistency", "\(id - 1)", "\(id)"])
                    #expect(proof.status == 0 || proof.standardError.contains("size 0"), "\(proof.standardError)")
                    try proof.standardOutput.write(toFile: name + ".consistency", atomically: true, encoding: .utf8)
                }
            }
            #expect(try await osmosectl(config, ["journal", "tiles", "--out", "\(directory)/tiles"]).status == 0)
            let interop = try await runProgram(
                "/usr/bin/env",
                ["python3", repositoryRoot.appendingPathComponent("scripts/interop/verify-c2sp.py").path]
                    + verifierKeys.flatMap { ["--vkey", $0] } + ["--tiles", "\(directory)/tiles", "--history", history])
            #expect(interop.status == 0, "\(interop.standardOutput)\(interop.standardError)")
            #expect(interop.standardOutput.contains("ok history: \(ids.count) checkpoints"), "\(interop.standardOutput)")
            #expect(!interop.standardOutput.contains("(0 by two or more)"), "\(interop.standardOutput)")

            // A checkpoint forged with the retired key A after its retirement: verify refuses it.
            let head = try await admin.query("SELECT tree_size FROM journal.head").rows[0].int64("tree_size")
            let latest = try await admin.query("SELECT note, root_hash FROM journal.checkpoints ORDER BY id DESC LIMIT 1").rows[0]
            let text = try SignedNote.text(of: latest.string("note"))
            let lines = text.split(separator: "\n").map(String.init)
            let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
            let forged = Checkpoint(
                origin: Self.origin, size: UInt64(head), rootHash: try latest.bytes("root_hash"),
                extensions: [lines[3], "osmose-time " + JournalEntry.rfc3339(microseconds: now)])
            let keyAText = try String(contentsOfFile: "\(directory)/a.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let note = try forged.signed(by: [try NoteSignerKey(encoded: keyAText)])
            try await admin.query(
                "INSERT INTO journal.checkpoints (id, tree_size, root_hash, issued_at, note) VALUES ($1, $2, $3, $4::timestamptz, $5)",
                [ids.last! + 1, head, try latest.bytes("root_hash"), JournalEntry.rfc3339(microseconds: now), note])
            try await admin.query("UPDATE journal.head SET checkpoints = $1", [ids.last! + 1])
            let caught = try await osmosectl(config, ["journal", "verify", "--no-witnesses"])
            #expect(caught.status == 5 && caught.standardOutput.contains("checkpoint_retired_key"), "\(caught.standardOutput)\(caught.standardError)")

            // Only the key tools may write events about signing keys.
            let care = try await Connection.connect("\(database.connectionString) user=osmose_care", logger: testLogger)
            var fake = AccessEvent(source: "osmose-care", requestID: "forged-retirement", action: .keyAdmin, objectType: "journal-signing-key", result: .success)
            fake.objectID = String(verifierKeys[2].split(separator: "+")[1])
            fake.reason = "retired"
            let forgedEvent = fake
            await #expect(throws: StoreError.self) { try await care.perform { try $0.record(forgedEvent) } }
            await care.close()

            // Destroying the retired key A: evidence, file shredded, its verifier key kept.
            let destroyed = try await osmosectl(
                config, ["keys", "destroy", "1", "--purpose", "journal-signing", "--reason", "retired a year ago", "--key-file", "\(directory)/a.key"])
            #expect(destroyed.status == 0, "\(destroyed.standardError)")
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/a.key"))
            #expect(try await admin.query("SELECT count(*) AS n FROM keys.public_key_destructions WHERE key_id = 1").rows[0].int("n") == 1)
            let primaryRefused = try await osmosectl(config, ["keys", "destroy", "3", "--purpose", "journal-signing", "--reason", "oops"])
            #expect(primaryRefused.status != 0 && primaryRefused.standardError.contains("is primary"), "\(primaryRefused.standardError)")
            let status = try await osmosectl(config, ["keys", "status"])
            #expect(status.standardOutput.contains("journal-signing") && status.standardOutput.contains("destroyed"), "\(status.standardOutput)")

            await admin.close()
        }
    }
}
