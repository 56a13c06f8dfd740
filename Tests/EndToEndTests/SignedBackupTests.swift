import Age
import Foundation
import Glibc
import Journal
import Store
import Testing
import TestSupport

/// The signed store end to end: a real cluster archiving through osmose-backupd,
/// then what an attacker on the backup host can do, each refused by the commands
/// with exit status 5 and the file named; and a forged segment met during recovery.
@Suite("Signed backups end to end", .serialized)
struct SignedBackupTests {
    let bin = builtExecutablesDirectory()
    var backupd: String { bin.appendingPathComponent("osmose-backupd").path }
    var osmosectl: String { bin.appendingPathComponent("osmosectl").path }

    /// A copy of the store at `<directory>/<label>/store` and a configuration using it.
    func scenario(_ label: String, directory: String, config: String) async throws -> (store: String, config: String) {
        let root = "\(directory)/\(label)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        #expect(try await runProgram("/bin/cp", ["-a", "\(directory)/store", "\(root)/store"]).status == 0)
        let text = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: "\(directory)/store", with: "\(root)/store")
        try text.write(toFile: "\(root)/osmose.yaml", atomically: true, encoding: .utf8)
        return ("\(root)/store", "\(root)/osmose.yaml")
    }

    @Test("Forged WAL (replaced, unsigned, second key), an appended backup, an edited summary, a forged tombstone: refused by list, verify, restore, drill and wal-fetch with status 5 and the file named; a forged segment aborts recovery instead of ending it early")
    func forgeriesRefusedByTheCommands() async throws {
        let identity = try AgeIdentity.generate()
        try await withBackupCluster("signed", recipient: identity.recipient.encoded, identityFile: identity.exposedFile(created: "test")) { cluster, config in
            let directory = cluster.directory
            let connection = try await Connection.connect(cluster.connectionString(), logger: testLogger)
            try await connection.execute("CREATE TABLE drill (id serial PRIMARY KEY, phase text NOT NULL)")
            let full = try await cluster.asOwner([backupd, "full", "--config", config])
            #expect(full.status == 0, "\(full.standardError)")
            try await connection.execute("INSERT INTO drill (phase) SELECT 't1' FROM generate_series(1, 100)")
            try await archiveCurrentWAL(connection)
            let incremental = try await cluster.asOwner([backupd, "incremental", "--config", config])
            #expect(incremental.status == 0, "\(incremental.standardError)")
            try await connection.execute("INSERT INTO drill (phase) SELECT 't2' FROM generate_series(1, 100)")
            try await archiveCurrentWAL(connection)
            try await connection.execute("INSERT INTO drill (phase) SELECT 't3' FROM generate_series(1, 100)")
            let last = try await archiveCurrentWAL(connection)
            // The catalogue records which key signed each backup (osmose-keyd promotes a pending key on it).
            let signedBy = try await connection.query("SELECT array_to_string(signed_by, ',') AS s FROM ops.backups ORDER BY id").rows.map { try $0.string("s") }
            await connection.close()
            await cluster.stop()
            let keyID = try #require(try String(contentsOfFile: config, encoding: .utf8).range(of: "\\+[0-9a-f]{8}\\+", options: .regularExpression).map {
                String(try String(contentsOfFile: config, encoding: .utf8)[$0].dropFirst().dropLast())
            })
            #expect(signedBy == [keyID, keyID], "\(signedBy)")

            let list = try await runProgram(osmosectl, ["backup", "list", "--config", config])
            #expect(list.status == 0 && list.standardOutput.contains(keyID) && list.standardOutput.contains("2 backups"), "\(list.standardOutput)\(list.standardError)")
            let verify = try await runProgram(osmosectl, ["backup", "verify", "--all", "--read-data", "--config", config])
            #expect(verify.status == 0 && verify.standardOutput.contains("backups verified: OK"), "\(verify.standardOutput)\(verify.standardError)")

            let store = "\(directory)/store"
            let ids = try FileManager.default.contentsOfDirectory(atPath: "\(store)/base").filter { !$0.hasPrefix(".") && !$0.hasSuffix(".log") }.sorted()
            let segments = try FileManager.default.contentsOfDirectory(atPath: "\(store)/wal").filter { $0.count == 24 + 12 }.map { String($0.prefix(24)) }.sorted()
            let segment = segments[segments.count - 2]  // replayed by every restore, after both backups
            // PostgreSQL's shutdown switches away from a segment that holds any record (a standby snapshot
            // the background writer logs under load, say), so the store may end one segment past `last`.
            #expect(segment <= last && segments.contains(last), "the forged segment is one recovery needs: \(segment) of \(segments), last switch \(last)")
            let attacker = try BackupSigningKey(in: directory)
            let forgedContent = "\(directory)/forged-segment"
            try Data(repeating: 7, count: 65_536).write(to: URL(fileURLWithPath: forgedContent))

            /// A command's outcome must be 5, naming `file` on the stream it reports on.
            func refused(_ arguments: [String], _ file: String, _ what: String, stdout: Bool = false) async throws {
                let outcome = try await runProgram(arguments[0], Array(arguments.dropFirst()))
                let text = stdout ? outcome.standardOutput : outcome.standardError
                #expect(outcome.status == 5 && text.contains(file), "\(what): \(arguments[1...2]) → \(outcome.status): \(outcome.standardOutput) \(outcome.standardError)")
            }

            for forgery in ["wal-replaced", "wal-unsigned", "wal-second-key", "backup-appended", "summary-edited", "tombstone-forged"] {
                let (copy, copyConfig) = try await scenario(forgery, directory: directory, config: config)
                let file: String
                switch forgery {
                case "wal-replaced", "wal-unsigned", "wal-second-key":
                    // A segment of the attacker's choosing, encrypted to the store's recipient, its push-log line rewritten.
                    let archive = "\(copy)/wal/\(segment).tar.zst.age"
                    unlink(archive)
                    let encrypted = try await runProgram(
                        "/bin/sh",
                        ["-c", "cd \(directory) && cp forged-segment \(segment) && bsdtar --format pax -cf - \(segment) | age -r \(identity.recipient.encoded) -o \(archive) && rm \(segment)"])
                    #expect(encrypted.status == 0, "\(encrypted.standardError)")
                    let digest = try await runProgram("/bin/sh", ["-c", "sha256sum < \(forgedContent) | cut -c1-64"])
                    let log = try String(contentsOfFile: "\(copy)/wal/pushed.log", encoding: .utf8).split(separator: "\n").map { line in
                        line.hasPrefix(segment) ? "\(segment) \(digest.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines))" : String(line)
                    }
                    try (log.joined(separator: "\n") + "\n").write(toFile: "\(copy)/wal/pushed.log", atomically: true, encoding: .utf8)
                    switch forgery {
                    case "wal-replaced":
                        file = "wal/\(segment).tar.zst.age"
                    case "wal-unsigned":
                        unlink("\(copy)/wal/\(segment).sig")
                        try (digest.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) + "\n").write(
                            toFile: "\(copy)/wal/\(segment).sha256", atomically: true, encoding: .utf8)
                        file = "wal/\(segment).sig"
                    default:
                        // The genuine statement re-signed by a second key: the configuration does not list it.
                        let note = try String(contentsOfFile: "\(copy)/wal/\(segment).sig", encoding: .utf8)
                        try SignedNote.sign(try SignedNote.text(of: note), with: [attacker.key]).write(
                            toFile: "\(copy)/wal/\(segment).sig", atomically: true, encoding: .utf8)
                        file = "wal/\(segment).sig"
                    }
                    let fetched = "\(directory)/\(forgery)-fetched"
                    try await refused([backupd, "wal-fetch", segment, fetched, "--config", copyConfig], file, forgery)
                    #expect(!FileManager.default.fileExists(atPath: fetched), "\(forgery): nothing written")
                case "backup-appended":
                    // A whole backup appended at the head with a correct hash chain, by an osmose-backupd holding another
                    // key (the verifier key is public: it chains to the newest genuine backup).
                    let text = try String(contentsOfFile: copyConfig, encoding: .utf8)
                        .replacingOccurrences(of: "signing_key_files: [", with: "signing_key_files: [\(attacker.file)] #")
                    try text.write(toFile: "\(directory)/\(forgery)/attacker.yaml", atomically: true, encoding: .utf8)
                    try TestCluster.giveToOwner(directory)
                    try await cluster.start()
                    let appended = try await cluster.asOwner([backupd, "incremental", "--config", "\(directory)/\(forgery)/attacker.yaml"])
                    await cluster.stop()
                    #expect(appended.status == 0, "\(appended.standardError)")
                    let id = try #require(try FileManager.default.contentsOfDirectory(atPath: "\(copy)/base").filter { !$0.hasPrefix(".") && !$0.hasSuffix(".log") }.max())
                    let summary = try String(contentsOfFile: "\(copy)/base/\(id)/summary.json", encoding: .utf8)
                    #expect(summary.contains("\"parent\" : \"\(ids.last!)\""), "a correct chain: \(summary)")
                    file = "base/\(id)/backup.sig"
                case "summary-edited":
                    let path = "\(copy)/base/\(ids[0])/summary.json"
                    let edited = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "\"kind\" : \"full\"", with: "\"kind\" : \"full\" ")
                    try edited.write(toFile: path, atomically: true, encoding: .utf8)
                    file = "base/\(ids[0])/summary.json"
                default:
                    // The incremental removed, and a tombstone (unsigned, as the backup host can write it) in its place.
                    let removed = ids[1]
                    let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(copy)/base/\(removed)/summary.json"))) as! [String: Any]
                    try FileManager.default.removeItem(atPath: "\(copy)/base/\(removed)")
                    let tombstone: [String: Any] = [
                        "id": removed, "kind": "incremental", "parent": summary["parent"] as! String,
                        "parentManifestSHA256": summary["parentManifestSHA256"] as! String, "manifestSHA256": summary["manifestSHA256"] as! String,
                        "prunedAt": "2026-12-04T00:00:00.000Z",
                    ]
                    try (String(decoding: try JSONSerialization.data(withJSONObject: tombstone), as: UTF8.self) + "\n").write(
                        toFile: "\(copy)/base/pruned.log", atomically: true, encoding: .utf8)
                    file = "base/pruned.log (\(removed))"
                }
                try await refused([osmosectl, "backup", "verify", "--all", "--config", copyConfig], "FAIL \(file)", forgery, stdout: true)
                let target = "\(directory)/\(forgery)-restored"
                try await refused([osmosectl, "backup", "restore", "--to", "latest", "--target", target, "--config", copyConfig], file, forgery)
                #expect((try? FileManager.default.contentsOfDirectory(atPath: target))?.isEmpty ?? true, "\(forgery): nothing restored")
                let drill = "\(directory)/\(forgery)-drill"
                try await refused([osmosectl, "backup", "drill", "--directory", drill, "--config", copyConfig], file, forgery)
                #expect((try? FileManager.default.contentsOfDirectory(atPath: drill))?.isEmpty ?? true, "\(forgery): no drill cluster")
                if forgery.hasPrefix("wal") {
                    // --accept-unsigned does not take a file added, replaced or signed wrongly after signing began.
                    try await refused([osmosectl, "backup", "restore", "--to", "latest", "--target", target, "--accept-unsigned", "--config", copyConfig], file, forgery)
                } else {
                    try await refused([osmosectl, "backup", "list", "--config", copyConfig], file, forgery)
                }
            }

            // The store is fine: a restore goes ahead. Then a segment is forged before PostgreSQL asks for it:
            // wal-fetch refuses it (5), the restore_command makes that 255, and recovery aborts rather than promote early.
            let restored = "\(directory)/restored"
            let restore = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", restored, "--config", config])
            #expect(restore.status == 0, "\(restore.standardError)")
            let settings = try String(contentsOfFile: "\(restored)/postgresql.auto.conf", encoding: .utf8)
            #expect(settings.contains("|| { s=$?; [ $s -eq 1 ] && exit 1; exit 255; }"), "\(settings)")
            unlink("\(store)/wal/\(segment).tar.zst.age")
            let encrypted = try await runProgram(
                "/bin/sh",
                ["-c", "cd \(directory) && cp forged-segment \(segment) && bsdtar --format pax -cf - \(segment) | age -r \(identity.recipient.encoded) -o \(store)/wal/\(segment).tar.zst.age && rm \(segment)"])
            #expect(encrypted.status == 0)
            try TestCluster.giveToOwner(restored)
            try? await cluster.start(dataDirectory: restored)
            try await waitUntil("the restored server to stop", timeout: .seconds(120)) {
                !FileManager.default.fileExists(atPath: "\(restored)/postmaster.pid")
            }
            let logs = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("server-") }
                .compactMap { try? String(contentsOfFile: "\(directory)/\($0)", encoding: .utf8) }.joined(separator: "\n")
            #expect(logs.contains("could not restore file \"\(segment)\" from archive") && logs.contains("exit code 255"), "\(logs.suffix(3000))")
            #expect(!logs.contains("archive recovery complete"), "never promoted past the forged segment")
        }
    }

    @Test("osmosectl keys rotate makes the backup-signing key (0600, recorded, its verifier key printed by rotate and status) that osmose-backupd signs with; a store from before signing restores only with --accept-unsigned, journaled first (refused, nothing written, when the journal cannot be written), and its WAL replays")
    func keyFromOsmosectlAndStoreFromBeforeSigning() async throws {
        let identity = try AgeIdentity.generate()
        try await withBackupCluster("presigning", recipient: identity.recipient.encoded, identityFile: identity.exposedFile(created: "test")) { cluster, config in
            let directory = cluster.directory
            let keyFile = "\(directory)/rotated-backup-signing.key"
            let rotated = try await runProgram(
                osmosectl, ["keys", "rotate", "--purpose", "backup-signing", "--key-out", keyFile, "--reason", "installation", "--config", config])
            #expect(rotated.status == 0 && rotated.standardOutput.contains("recorded as primary"), "\(rotated.standardOutput)\(rotated.standardError)")
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int)
            #expect(mode == 0o600, "the private half is the owner's only: \(String(mode, radix: 8))")
            let verifier = try #require(
                rotated.standardOutput.split(separator: "\n").first { $0.hasPrefix("verifier key: ") }.map { String($0.dropFirst("verifier key: ".count)) })
            #expect(!rotated.standardOutput.contains(try String(contentsOfFile: keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)),
                "the private half is never printed")
            let status = try await runProgram(osmosectl, ["keys", "status", "--config", config])
            #expect(status.status == 0 && status.standardOutput.contains("verifier_keys:         - \"\(verifier)\"   (primary)"), "\(status.standardOutput)\(status.standardError)")
            // Installed as a sysadmin does where archive_command runs: a file of the cluster's owner, its verifier key trusted.
            try TestCluster.giveToOwner(keyFile)
            let settings = try String(contentsOfFile: config, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map { line in
                if line.hasPrefix("  signing_key_files:") { return "  signing_key_files: [\(keyFile)]" }
                if line.hasPrefix("  verifier_keys:") { return "  verifier_keys: [\"\(verifier)\"]" }
                return String(line)
            }
            try settings.joined(separator: "\n").write(toFile: config, atomically: true, encoding: .utf8)

            let connection = try await Connection.connect(cluster.connectionString(), logger: testLogger)
            try await connection.execute("CREATE TABLE drill (id serial PRIMARY KEY, phase text NOT NULL)")
            let full = try await cluster.asOwner([backupd, "full", "--config", config])
            #expect(full.status == 0 && !full.standardError.contains("not in the keyring"), "\(full.standardError)")
            try await connection.execute("INSERT INTO drill (phase) SELECT 't1' FROM generate_series(1, 100)")
            let last = try await archiveCurrentWAL(connection)
            let keyID = String(format: "%08x", try NoteVerifierKey(encoded: verifier).keyID)
            let signedBy = try await connection.query("SELECT array_to_string(signed_by, ',') AS s FROM ops.backups").rows.map { try $0.string("s") }
            #expect(signedBy == [keyID], "\(signedBy)")

            // The store as the previous version wrote it: no signature, a digest file beside each WAL file.
            let store = "\(directory)/store"
            for id in try FileManager.default.contentsOfDirectory(atPath: "\(store)/base") where !id.hasSuffix(".log") {
                unlink("\(store)/base/\(id)/backup.sig")
            }
            let pushed = try String(contentsOfFile: "\(store)/wal/pushed.log", encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ") }
            for line in pushed where line.count == 2 {
                try (String(line[1]) + "\n").write(toFile: "\(store)/wal/\(line[0]).sha256", atomically: true, encoding: .utf8)
                unlink("\(store)/wal/\(line[0]).sig")
            }
            #expect(FileManager.default.fileExists(atPath: "\(store)/wal/\(last).sha256"))
            let listed = try await runProgram(osmosectl, ["backup", "list", "--config", config])
            #expect(listed.status == 5 && listed.standardError.contains("backup.sig: missing"), "\(listed.standardOutput)\(listed.standardError)")
            let dry = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", "\(directory)/dry", "--accept-unsigned", "--dry-run", "--config", config])
            #expect(dry.status == 0 && dry.standardOutput.contains("would accept") && dry.standardOutput.contains("without a signature"), "\(dry.standardOutput)\(dry.standardError)")

            // The journal cannot be written (the database is down): the decision is refused, nothing restored.
            let intake = "SELECT count(*) AS n FROM journal.intake WHERE object_type = 'backup' AND reason LIKE '%--accept-unsigned%'"
            #expect(try await connection.query(intake).rows[0].int("n") == 0)
            await connection.close()
            await cluster.stop()
            let unjournaled = "\(directory)/unjournaled"
            let refused = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", unjournaled, "--accept-unsigned", "--config", config])
            #expect(refused.status == 4 && refused.standardError.contains("must be journaled first"), "\(refused.standardOutput)\(refused.standardError)")
            #expect((try? FileManager.default.contentsOfDirectory(atPath: unjournaled))?.isEmpty ?? true, "nothing restored")

            // The database up: journaled first, then restored; the restored cluster replays the unsigned WAL.
            try await cluster.start()
            let restoredDirectory = "\(directory)/restored-unsigned"
            let restored = try await runProgram(
                osmosectl, ["backup", "restore", "--to", "latest", "--target", restoredDirectory, "--accept-unsigned", "--config", config])
            #expect(restored.status == 0, "\(restored.standardOutput)\(restored.standardError)")
            let check = try await Connection.connect(cluster.connectionString(), logger: testLogger)
            #expect(try await check.query(intake).rows[0].int("n") == 1, "the acceptance is journaled")
            await check.close()
            await cluster.stop()
            let recovery = try String(contentsOfFile: "\(restoredDirectory)/postgresql.auto.conf", encoding: .utf8)
            #expect(recovery.contains("--accept-unsigned"), "wal-fetch accepts the old WAL files too: \(recovery)")
            try await cluster.startAndPromote(restoredDirectory)
            let replayed = try await Connection.connect(cluster.connectionString(), logger: testLogger)
            let rows = try await replayed.query("SELECT count(*) AS n FROM drill WHERE phase = 't1'").rows[0].int("n")
            await replayed.close()
            await cluster.stop(dataDirectory: restoredDirectory)
            #expect(rows == 100, "the unsigned WAL replayed")
        }
    }

    @Test("osmose-backupd signs with every backup-signing-key credential (a rollover's two keys: two signatures, each checked by the documented OpenSSL script), before backup.signing_key_files; wal-fetch takes either verifier key, refuses a third; a credential that is not a key is 6")
    func credentials() async throws {
        let directory = "/tmp/osmose-signcreds-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: "\(directory)/credentials", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let identity = try AgeIdentity.generate()
        try identity.exposedFile(created: "test").write(toFile: "\(directory)/identity.txt", atomically: true, encoding: .utf8)
        let current = try BackupSigningKey(in: directory), next = try BackupSigningKey(in: directory), file = try BackupSigningKey(in: directory)
        try (current.key.exposedEncoding() + "\n").write(toFile: "\(directory)/credentials/backup-signing-key", atomically: true, encoding: .utf8)
        try (next.key.exposedEncoding() + "\n").write(toFile: "\(directory)/credentials/backup-signing-key-7", atomically: true, encoding: .utf8)
        func configuration(_ name: String, trusting keys: [BackupSigningKey]) throws -> String {
            let path = "\(directory)/\(name).yaml"
            try """
                backup:
                  store: \(directory)/store
                  recipients: ["\(identity.recipient.encoded)"]
                  identity_file: \(directory)/identity.txt
                  signing_key_files: [\(file.file)]
                  verifier_keys: [\(keys.map { "\"\($0.verifierKey)\"" }.joined(separator: ", "))]

                """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let both = try configuration("both", trusting: [current, next])
        let segment = "\(directory)/segment"
        var generator = TestSeed.generator(test: "SignedBackupTests.credentials")
        try Data((0..<65_536).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: segment))
        let name = "000000010000000000000005"
        let environment = ["CREDENTIALS_DIRECTORY": "\(directory)/credentials"]
        let pushed = try await runProgram(backupd, ["wal-push", "--config", both, segment, name], environment: environment)
        #expect(pushed.status == 0, "\(pushed.standardError)")
        let note = try String(contentsOfFile: "\(directory)/store/wal/\(name).sig", encoding: .utf8)
        #expect(note.split(separator: "\n").filter { $0.hasPrefix("— ") }.count == 2, "both credentials sign, the file is not used: \(note)")
        let check = try documentedSignatureCheck(in: directory)
        for key in [current, next] {
            let checked = try await runProgram("/bin/sh", [check, key.verifierKey, "\(directory)/store/wal/\(name).sig", "\(directory)/store/wal/\(name).tar.zst.age"])
            #expect(checked.status == 0, "\(checked.standardError)")
        }
        let third = try await runProgram("/bin/sh", [check, file.verifierKey, "\(directory)/store/wal/\(name).sig"])
        #expect(third.status == 1 && third.standardError.contains("no signature by"), "\(third.standardError)")

        for (label, keys) in [("next", [next]), ("current", [current])] {
            let fetched = "\(directory)/fetched-\(label)"
            let fetch = try await runProgram(backupd, ["wal-fetch", name, fetched, "--config", try configuration(label, trusting: keys)])
            #expect(fetch.status == 0, "\(label): \(fetch.standardError)")
            #expect(FileManager.default.contents(atPath: fetched) == FileManager.default.contents(atPath: segment), "\(label): the segment, identical")
        }
        let refused = try await runProgram(backupd, ["wal-fetch", name, "\(directory)/fetched-other", "--config", try configuration("other", trusting: [file])])
        #expect(refused.status == 5 && refused.standardError.contains("wal/\(name).sig"), "\(refused.standardError)")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/fetched-other"), "nothing written")

        try "not a key\n".write(toFile: "\(directory)/credentials/backup-signing-key-7", atomically: true, encoding: .utf8)
        let broken = try await runProgram(backupd, ["wal-push", "--config", both, segment, "000000010000000000000006"], environment: environment)
        #expect(broken.status == 6 && broken.standardError.contains("credential backup-signing-key-7"), "\(broken.standardError)")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/store/wal/000000010000000000000006.tar.zst.age"), "nothing written unsigned")
    }
}
