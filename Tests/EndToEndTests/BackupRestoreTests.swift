import Age
import Foundation
import Glibc
import Journal
import Store
import Testing
import TestSupport

/// Backups of a real cluster: WAL archived by osmose-backupd wal-push as PostgreSQL's
/// archive_command, a full backup, restores to a point in time, damage, and the
/// disaster path with the standard age and bsdtar tools only.
@Suite("Backups end to end", .serialized)
struct BackupRestoreTests {
    let bin = builtExecutablesDirectory()

    func rows(_ cluster: TestCluster) async throws -> [String] {
        let connection = try await Connection.connect(cluster.connectionString(), logger: testLogger)
        defer { Task { await connection.close() } }
        return try await connection.query("SELECT phase FROM drill ORDER BY id").rows.map { try $0.string("phase") }
    }

    @Test("Rows written at t1, t2, t3: a restore to between t2 and t3 holds exactly t1 and t2; latest holds all; damage and a WAL gap are refused and named by verify; age | bsdtar rebuild a cluster that starts")
    func pointInTime() async throws {
        let identity = try AgeIdentity.generate()
        let backupd = bin.appendingPathComponent("osmose-backupd").path
        let osmosectl = bin.appendingPathComponent("osmosectl").path
        try await TestCluster.with("pitr") { placeholder in
            let directory = placeholder.directory
            let config = "\(directory)/osmose.yaml"
            let identityFile = "\(directory)/identity.txt"
            try placeholder.appendSettings("""
                archive_mode = on
                archive_command = '\(backupd) wal-push --config \(config) %p %f'
                """)
            let signing = try BackupSigningKey(in: directory)
            try """
                database:
                  connection: "\(placeholder.connectionString())"
                backup:
                  store: \(directory)/store
                  recipients: ["\(identity.recipient.encoded)"]
                  identity_file: \(identityFile)
                  copies: [\(directory)/offsite]
                \(signing.settings)paths:
                  policies: \(repositoryRoot.path)/policies
                """.write(toFile: config, atomically: true, encoding: .utf8)
            try identity.exposedFile(created: "test").write(toFile: identityFile, atomically: true, encoding: .utf8)
            chmod(identityFile, 0o600)
            try FileManager.default.createDirectory(atPath: "\(directory)/store", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: "\(directory)/offsite", withIntermediateDirectories: true)
            try TestCluster.giveToOwner(directory)
            let cluster = placeholder
            try await cluster.start()
            // As a Debian cluster keeps it in /etc: the backups lack it, and restore says so
            // (read at start only, so the running server does not miss it).
            try FileManager.default.moveItem(atPath: "\(cluster.dataDirectory)/pg_ident.conf", toPath: "\(directory)/pg_ident.conf.kept-aside")

            #expect(try await runProgram(osmosectl, ["db", "migrate", "--config", config]).status == 0)
            let connection = try await Connection.connect(cluster.connectionString(), logger: testLogger)
            try await connection.execute("CREATE TABLE drill (id serial PRIMARY KEY, phase text NOT NULL)")
            let full = try await cluster.asOwner([backupd, "full", "--config", config])
            #expect(full.status == 0, "\(full.standardError)")
            // Recorded in the catalogue table and the journal, with its recipient.
            let recorded = try await connection.query("SELECT id, recipients FROM ops.backups").rows
            let recipients = try recorded.first?.string("recipients") ?? ""
            #expect(recorded.count == 1 && recipients.contains(identity.recipient.fingerprint), "\(recipients)")
            #expect(try await connection.query("SELECT count(*) AS n FROM journal.intake WHERE action = 'backup-admin' AND object_type = 'backup'").rows[0].int("n") == 1)
            try await connection.execute("INSERT INTO drill (phase) SELECT 't1' FROM generate_series(1, 100)")
            try await connection.execute("INSERT INTO drill (phase) SELECT 't2' FROM generate_series(1, 100)")
            // Commit times and backup times are precise to the microsecond and millisecond: a few milliseconds apart are enough.
            try await Task.sleep(for: .milliseconds(50))
            let between = try await connection.query("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS t").rows[0].string("t")
            try await Task.sleep(for: .milliseconds(50))
            try await connection.execute("INSERT INTO drill (phase) SELECT 't3' FROM generate_series(1, 100)")
            let last = try await archiveCurrentWAL(connection)
            await connection.close()
            await cluster.stop()

            // The copy location followed: the full backup copied and read back, each WAL file as it was pushed.
            #expect(full.standardOutput.contains("read back identical"), "\(full.standardOutput)")
            #expect(FileManager.default.fileExists(atPath: "\(directory)/offsite/wal/\(last).tar.zst.age"), "the last segment reached the copy")
            let catchUp = try await runProgram(backupd, ["copy", "--config", config])
            #expect(catchUp.status == 0 && catchUp.standardOutput.contains(" 0 copied"), "nothing left to copy: \(catchUp.standardOutput)\(catchUp.standardError)")

            let list = try await runProgram(osmosectl, ["backup", "list", "--config", config])
            #expect(list.status == 0 && list.standardOutput.contains("1 backups"), "\(list.standardOutput)\(list.standardError)")
            let verify = try await runProgram(osmosectl, ["backup", "verify", "--all", "--config", config])
            #expect(verify.status == 0 && verify.standardOutput.contains("backups verified: OK"), "\(verify.standardOutput)\(verify.standardError)")
            #expect(verify.standardOutput.contains("1 archives compared with their recorded SHA-256"), "\(verify.standardOutput)")
            let readData = try await runProgram(osmosectl, ["backup", "verify", "--all", "--read-data", "--config", config])
            #expect(readData.status == 0 && readData.standardOutput.contains("backups verified: OK"), "\(readData.standardOutput)\(readData.standardError)")
            #expect(readData.standardOutput.contains("members read") && !readData.standardOutput.contains("archives compared"), "\(readData.standardOutput)")

            // The restore drill: a temporary cluster restored, started, counted, removed.
            let drill = try await runProgram(osmosectl, ["backup", "drill", "--config", config])
            #expect(drill.status == 0 && drill.standardOutput.contains("drill passed") && drill.standardOutput.contains("public.drill: 300 rows"), "\(drill.standardOutput)\(drill.standardError)")

            // Point in time: between t2 and t3.
            let pitr = "\(directory)/restored-pitr"
            let restored = try await runProgram(osmosectl, ["backup", "restore", "--to", between, "--target", pitr, "--config", config])
            #expect(restored.status == 0, "\(restored.standardOutput)\(restored.standardError)")
            #expect(
                restored.standardOutput.contains("note: the backup holds no pg_ident.conf:") && restored.standardOutput.contains("logins through a user name map fail")
                    && restored.standardOutput.contains("pg_ctl -D \(pitr) start (as postgres)") && !restored.standardOutput.contains("pg_createcluster"),
                "the one configuration file the cluster kept aside is named; it starts without it: \(restored.standardOutput)")
            try await cluster.startAndPromote(pitr)
            let atT2 = try await rows(cluster)
            #expect(atT2.filter { $0 == "t1" }.count == 100 && atT2.filter { $0 == "t2" }.count == 100 && !atT2.contains("t3"), "\(Set(atT2))")
            await cluster.stop(dataDirectory: pitr)

            // Latest: everything.
            let latest = "\(directory)/restored-latest"
            // From the store's directory with relative paths: restore_command must not depend on the current directory
            // (PostgreSQL runs it in the data directory).
            let relative = try await runProgram("/bin/sh", ["-c", "cd '\(directory)' && '\(osmosectl)' backup restore --to latest --target restored-latest --config osmose.yaml --identity identity.txt"])
            #expect(relative.status == 0, "\(relative.standardOutput)\(relative.standardError)")
            #expect(latest == "\(directory)/restored-latest")
            try await cluster.startAndPromote(latest)
            #expect(try await rows(cluster).count == 300)
            await cluster.stop(dataDirectory: latest)

            // The disaster path, standard tools only: each signature checked with OpenSSL (the script
            // docs/backup.md gives) before anything is decrypted.
            let store = "\(directory)/store"
            let backupID = try FileManager.default.contentsOfDirectory(atPath: "\(store)/base").filter { !$0.hasSuffix(".log") }.sorted().last!
            let check = try documentedSignatureCheck(in: directory)
            let key = signing.verifierKey
            let manual = "\(directory)/manual"
            try FileManager.default.createDirectory(atPath: manual, withIntermediateDirectories: true)
            let unpacked = try await runProgram(
                "/bin/sh",
                [
                    "-c",
                    "sh \(check) '\(key)' \(store)/base/\(backupID)/backup.sig \(store)/base/\(backupID)/data.tar.zst.age && age -d -i \(identityFile) \(store)/base/\(backupID)/data.tar.zst.age | bsdtar -xf - -C \(manual) && bsdtar --version >/dev/null",
                ])
            #expect(unpacked.status == 0, "\(unpacked.standardError)")
            let manualData = "\(manual)/pgdata"
            chmod(manualData, 0o700)
            try """
                restore_command = 'f=\(store)/wal/%f; test -f $f.tar.zst.age || exit 1; sh \(check) "\(key)" $f.sig $f.tar.zst.age || exit 255; age -d -i \(identityFile) $f.tar.zst.age | bsdtar -xOf - %f > %p'
                recovery_target_action = 'promote'
                archive_mode = 'off'

                """.write(toFile: "\(manualData)/postgresql.auto.conf", atomically: true, encoding: .utf8)
            _ = FileManager.default.createFile(atPath: "\(manualData)/recovery.signal", contents: Data())
            try await cluster.startAndPromote(manualData)
            #expect(try await rows(cluster).count == 300, "standard tools rebuild the latest state")
            await cluster.stop(dataDirectory: manualData)
            // A forged file is refused by the same script: a segment of the attacker's choosing encrypted to the
            // store's recipient (beside the genuine signature), and a signature by another key.
            let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: "\(store)/wal").filter { $0.count == 24 + 12 }.sorted().last)
            let name = String(segment.prefix(24))
            let forgedDirectory = "\(directory)/forged"
            try FileManager.default.createDirectory(atPath: forgedDirectory, withIntermediateDirectories: true)
            let forged = try await runProgram(
                "/bin/sh",
                ["-c", "head -c 65536 /dev/zero > \(forgedDirectory)/\(name) && cd \(forgedDirectory) && bsdtar --format pax -cf - \(name) | age -r \(identity.recipient.encoded) -o \(name).tar.zst.age"])
            #expect(forged.status == 0, "\(forged.standardError)")
            let forgedRefused = try await runProgram("/bin/sh", [check, key, "\(store)/wal/\(name).sig", "\(forgedDirectory)/\(name).tar.zst.age"])
            #expect(forgedRefused.status == 1 && forgedRefused.standardError.contains("differs from what it signs"), "\(forgedRefused.standardError)")
            let genuine = try await runProgram("/bin/sh", [check, key, "\(store)/wal/\(name).sig", "\(store)/wal/\(segment)"])
            #expect(genuine.status == 0, "\(genuine.standardError)")
            let other = try BackupSigningKey(in: forgedDirectory)
            let note = try String(contentsOfFile: "\(store)/wal/\(name).sig", encoding: .utf8)
            try SignedNote.sign(try SignedNote.text(of: note), with: [other.key]).write(toFile: "\(forgedDirectory)/\(name).sig", atomically: true, encoding: .utf8)
            let unknown = try await runProgram("/bin/sh", [check, key, "\(forgedDirectory)/\(name).sig", "\(store)/wal/\(segment)"])
            #expect(unknown.status == 1 && unknown.standardError.contains("no signature by"), "\(unknown.standardError)")
            var altered = note
            altered.replace("sha256 ", with: "sha256 0", maxReplacements: 1)
            try altered.write(toFile: "\(forgedDirectory)/\(name).sig", atomically: true, encoding: .utf8)
            let alteredCheck = try await runProgram("/bin/sh", [check, key, "\(forgedDirectory)/\(name).sig"])
            #expect(alteredCheck.status == 1 && alteredCheck.standardError.contains("does not verify"), "\(alteredCheck.standardError)")

            // Damage: a flipped byte in the base is refused by restore and named by verify.
            let archive = "\(store)/base/\(backupID)/data.tar.zst.age"
            let original = try Data(contentsOf: URL(fileURLWithPath: archive))
            var damaged = original
            damaged[damaged.count / 2] ^= 0x10
            try damaged.write(to: URL(fileURLWithPath: archive))
            let refused = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", "\(directory)/refused", "--config", config])
            #expect(refused.status != 0, "\(refused.standardOutput)")
            #expect((try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/refused"))?.isEmpty ?? true, "nothing left that could start")
            for mode in [[], ["--read-data"]] {
                let named = try await runProgram(osmosectl, ["backup", "verify"] + mode + ["--config", config])
                #expect(named.status == 5 && named.standardOutput.contains("FAIL base/\(backupID)/data.tar.zst.age"), "\(mode): \(named.standardOutput)")
            }
            // Truncated: the same.
            try original.prefix(original.count - 1000).write(to: URL(fileURLWithPath: archive))
            for mode in [[], ["--read-data"]] {
                let named = try await runProgram(osmosectl, ["backup", "verify"] + mode + ["--config", config])
                #expect(named.status == 5 && named.standardOutput.contains("FAIL base/\(backupID)/data.tar.zst.age"), "\(mode): \(named.standardOutput)")
            }
            // A member missing: the archive rebuilt (uncompressed: bsdtar pads a zstd stream, pitfalls.md) without pgdata/PG_VERSION and encrypted again to the
            // same recipient (everything in it authentic but that member): verify names the file, and
            // with --read-data the member; restore refuses.
            try original.write(to: URL(fileURLWithPath: archive + ".orig"))
            unlink(archive)
            let withoutMember = try await runProgram(
                "/bin/sh",
                ["-c", "age -d -i \(identityFile) \(archive).orig | bsdtar -cf - --format pax --exclude pgdata/PG_VERSION @- | age -r \(identity.recipient.encoded) -o \(archive)"])
            #expect(withoutMember.status == 0, "\(withoutMember.standardError)")
            let fileNamed = try await runProgram(osmosectl, ["backup", "verify", "--config", config])
            #expect(fileNamed.status == 5 && fileNamed.standardOutput.contains("FAIL base/\(backupID)/data.tar.zst.age: differs from the file written"), "\(fileNamed.standardOutput)")
            let memberNamed = try await runProgram(osmosectl, ["backup", "verify", "--read-data", "--config", config])
            #expect(
                memberNamed.status == 5 && memberNamed.standardOutput.contains("FAIL base/\(backupID)/pgdata/PG_VERSION: in the manifest but missing from the archive")
                    && memberNamed.standardOutput.components(separatedBy: "FAIL ").count == 2,
                "\(memberNamed.standardOutput)")
            let memberRefused = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", "\(directory)/refused-member", "--config", config])
            #expect(memberRefused.status != 0 && memberRefused.standardError.contains("pgdata/PG_VERSION"), "\(memberRefused.standardError)")
            unlink(archive + ".orig")
            try original.write(to: URL(fileURLWithPath: archive))
            #expect(try await runProgram(osmosectl, ["backup", "verify", "--read-data", "--config", config]).status == 0, "restored, the store verifies again")

            // A missing WAL segment in the middle: restore refuses, verify names it.
            let segments = try FileManager.default.contentsOfDirectory(atPath: "\(store)/wal").filter { $0.hasSuffix(".tar.zst.age") && $0.count == 24 + 12 }.sorted()
            let hole = segments[segments.count - 2]
            try FileManager.default.moveItem(atPath: "\(store)/wal/\(hole)", toPath: "\(directory)/\(hole)")
            let gap = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", "\(directory)/gap", "--config", config])
            #expect(gap.status != 0 && gap.standardError.contains("missing"), "\(segments) hole \(hole): \(gap.standardOutput) \(gap.standardError)")
            let gapNamed = try await runProgram(osmosectl, ["backup", "verify", "--config", config])
            #expect(gapNamed.status == 5 && gapNamed.standardOutput.contains("wal/\(hole.prefix(24))"), "\(gapNamed.standardOutput)")

        }
    }

    @Test("wal-push killed with SIGKILL mid-push 20 times never leaves a file that passes for complete; the retry succeeds and the segment comes back identical", .tags(.crash), .skippedInFastRuns)
    func walPushCrashes() async throws {
        let identity = try AgeIdentity.generate()
        let directory = "/tmp/osmose-walcrash-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try identity.exposedFile(created: "test").write(toFile: "\(directory)/identity.txt", atomically: true, encoding: .utf8)
        let config = "\(directory)/osmose.yaml"
        let signing = try BackupSigningKey(in: directory)
        try "backup:\n  store: \(directory)/store\n  recipients: [\"\(identity.recipient.encoded)\"]\n  identity_file: \(directory)/identity.txt\n\(signing.settings)"
            .write(toFile: config, atomically: true, encoding: .utf8)
        let backupd = bin.appendingPathComponent("osmose-backupd").path
        var segment = [UInt8](repeating: 0, count: 16 << 20)
        for index in segment.indices where index % 7 == 0 { segment[index] = UInt8(truncatingIfNeeded: index &* 2654435761 >> 13) }
        try Data(segment).write(to: URL(fileURLWithPath: "\(directory)/segment"))
        // How long one push takes here (into a store of its own), so that the kills land within it on a fast or a loaded machine.
        let calibration = "\(directory)/calibration.yaml"
        try "backup:\n  store: \(directory)/calibration-store\n  recipients: [\"\(identity.recipient.encoded)\"]\n\(signing.settings)".write(toFile: calibration, atomically: true, encoding: .utf8)
        let clock = ContinuousClock()
        let started = clock.now
        #expect(try await runProgram(backupd, ["wal-push", "--config", calibration, "\(directory)/segment", "000000010000000000000001"]).status == 0)
        var pushMilliseconds = max(10, Int((clock.now - started) / .milliseconds(1)))
        var random = TestSeed.generator(test: "wal-push crashes")
        var interrupted = 0
        var round = 0
        // Until 20 kills have landed mid-push: a push that finished first (a machine faster
        // than the calibration, or one less loaded) narrows the window for the next.
        while interrupted < 20 && round < 80 {
            defer { round += 1 }
            let name = String(format: "%08X%08X%08X", 1, 0, round + 1)
            let push = try BackgroundProcess(backupd, ["wal-push", "--config", config, "\(directory)/segment", name])
            try await Task.sleep(for: .milliseconds(Int.random(in: 1...(pushMilliseconds * 9 / 10), using: &random)))
            push.signal(SIGKILL)
            let outcome = try await push.wait()
            if outcome.status == 128 + SIGKILL { interrupted += 1 } else { pushMilliseconds = max(5, pushMilliseconds * 3 / 4) }
            let stored = "\(directory)/store/wal/\(name).tar.zst.age"
            if FileManager.default.fileExists(atPath: stored) {
                // Under its final name only when complete: it decrypts to the segment.
                let fetched = try await runProgram(backupd, ["wal-fetch", "--config", config, name, "\(directory)/fetched"])
                #expect(fetched.status == 0, "round \(round): \(fetched.standardError)")
                #expect(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/fetched")) == Data(segment), "round \(round)")
                try FileManager.default.removeItem(atPath: "\(directory)/fetched")
            }
            // PostgreSQL's retry.
            let retry = try await runProgram(backupd, ["wal-push", "--config", config, "\(directory)/segment", name])
            #expect(retry.status == 0, "round \(round): \(retry.standardError)")
            let fetched = try await runProgram(backupd, ["wal-fetch", "--config", config, name, "\(directory)/fetched"])
            let again = (try? Data(contentsOf: URL(fileURLWithPath: "\(directory)/fetched"))) ?? Data()
            #expect(fetched.status == 0 && again == Data(segment), "round \(round)")
            try? FileManager.default.removeItem(atPath: "\(directory)/fetched")
        }
        #expect(interrupted == 20, "kills landed mid-push: \(interrupted) in \(round) rounds")
        let listed = try FileManager.default.contentsOfDirectory(atPath: "\(directory)/store/wal").filter { $0.hasSuffix(".tar.zst.age") }
        #expect(listed.count == round)
    }

    @Test("osmose-backupd full (6 times) and incremental (4 times) killed with SIGKILL mid-run never list a backup that is not complete; the next run succeeds and everything verifies", .tags(.crash), .skippedInFastRuns)
    func fullBackupCrashes() async throws {
        let identity = try AgeIdentity.generate()
        let backupd = bin.appendingPathComponent("osmose-backupd").path
        let osmosectl = bin.appendingPathComponent("osmosectl").path
        try await withBackupCluster(
            "fullcrash", recipient: identity.recipient.encoded, identityFile: identity.exposedFile(created: "test"),
            extraBackupSettings: "  file_trees: [ARCHIVES]\n", prepare: { directory in
            try FileManager.default.createDirectory(atPath: "\(directory)/archives", withIntermediateDirectories: true)
        }) { cluster, config in
            let directory = cluster.directory
            /// New content for every file of the archives tree, so that an incremental has work to do.
            func rewriteArchives() throws {
                let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
                defer { try? random.close() }
                for index in 0..<20 {
                    try random.readData(ofLength: 2_000_000).write(to: URL(fileURLWithPath: "\(directory)/archives/part-\(index).bin"))
                }
            }
            try rewriteArchives()
            let connection = try await Connection.connect(cluster.connectionString(), logger: testLogger)
            try await connection.execute("CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) AS g")
            await connection.close()
            var random = TestSeed.generator(test: "backup crashes")
            let full = try await killMidRun(backupd, ["full", "--config", config], kills: 6, random: &random) { round in
                // Whatever is listed is complete: it verifies.
                let verify = try await runProgram(osmosectl, ["backup", "verify", "--all", "--config", config])
                let listed = try await runProgram(osmosectl, ["backup", "list", "--json", "--config", config])
                let count = (try? JSONSerialization.jsonObject(with: Data(listed.standardOutput.utf8)) as? [Any])?.count ?? -1
                #expect(count == 0 || verify.status == 0, "round \(round): \(verify.standardOutput)")
            }
            #expect(full.interrupted == 6, "kills landed mid-backup: \(full.interrupted) in \(full.rounds) rounds")
            let complete = try await runProgram(backupd, ["full", "--config", config])
            #expect(complete.status == 0, "\(complete.standardError)")
            let entries = try FileManager.default.contentsOfDirectory(atPath: "\(directory)/store/base")
            #expect(!entries.contains { $0.hasSuffix(".partial") }, "\(entries)")
            let verify = try await runProgram(osmosectl, ["backup", "verify", "--all", "--config", config])
            #expect(verify.status == 0 && verify.standardOutput.contains("backups verified: OK"), "\(verify.standardOutput)")

            // The same for incrementals (40 MB of changed files each time).
            let incrementals = try await killMidRun(backupd, ["incremental", "--config", config], kills: 4, random: &random, before: rewriteArchives) { round in
                let afterKill = try await runProgram(osmosectl, ["backup", "verify", "--all", "--config", config])
                #expect(afterKill.status == 0, "incremental round \(round): \(afterKill.standardOutput)")
            }
            #expect(incrementals.interrupted == 4, "kills landed mid-incremental: \(incrementals.interrupted) in \(incrementals.rounds) rounds")
            let finalIncremental = try await runProgram(backupd, ["incremental", "--config", config])
            #expect(finalIncremental.status == 0, "\(finalIncremental.standardError)")
            let finalVerify = try await runProgram(osmosectl, ["backup", "verify", "--all", "--config", config])
            #expect(finalVerify.status == 0, "\(finalVerify.standardOutput)")
        }
    }
}

/// Runs `program` once to time it here, then again and again, each time killed with
/// SIGKILL at a random moment within that time, until `kills` kills have landed
/// mid-run (a run that finished first narrows the window for the next; at most 4 ×
/// `kills` rounds). `before` runs ahead of each run, `after` after each kill.
/// The kill delays come from `random` (seeded: the test prints its seed).
func killMidRun(
    _ program: String, _ arguments: [String], kills: Int, random: inout SeededGenerator, before: () throws -> Void = {},
    after: (Int) async throws -> Void
) async throws -> (interrupted: Int, rounds: Int) {
    try before()
    let clock = ContinuousClock()
    let started = clock.now
    let timed = try await runProgram(program, arguments)
    #expect(timed.status == 0, "\(timed.standardError)")
    var window = max(10, Int((clock.now - started) / .milliseconds(1)))
    var interrupted = 0
    var round = 0
    while interrupted < kills && round < 4 * kills {
        try before()
        let run = try BackgroundProcess(program, arguments)
        try await Task.sleep(for: .milliseconds(Int.random(in: 1...max(1, window * 9 / 10), using: &random)))
        run.signal(SIGKILL)
        if try await run.wait().status == 128 + SIGKILL { interrupted += 1 } else { window = max(5, window * 3 / 4) }
        try await after(round)
        round += 1
    }
    return (interrupted, round)
}

extension TestCluster {
    /// Starts the cluster on the restored directory `data` and waits until its recovery
    /// has ended (promoted).
    func startAndPromote(_ data: String) async throws {
        try TestCluster.giveToOwner(data)
        try await start(dataDirectory: data)
        try await waitUntil("recovery to end", timeout: .seconds(90)) {
            guard let connection = try? await Connection.connect(self.connectionString(), logger: testLogger) else { return false }
            defer { Task { await connection.close() } }
            return try await connection.query("SELECT NOT pg_is_in_recovery() AS done").rows[0].bool("done")
        }
    }
}
