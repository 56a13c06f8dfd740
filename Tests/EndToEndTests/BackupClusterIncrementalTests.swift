import Age
import Foundation
import Glibc
import Store
import Testing
import TestSupport

/// Incrementals of the cluster itself (`backup.data_directory`): each nightly
/// incremental stores the data files changed since the previous backup, a restore
/// rebuilds the cluster from the full plus the chain and replays only the WAL since
/// the chosen incremental; the same with the standard tools; SIGKILL mid-incremental.
@Suite("Incrementals of the cluster end to end", .serialized)
struct BackupClusterIncrementalTests {
    let backupd = builtExecutablesDirectory().appendingPathComponent("osmose-backupd").path
    let osmosectl = builtExecutablesDirectory().appendingPathComponent("osmosectl").path

    func phases(_ cluster: TestCluster) async throws -> [String] {
        let connection = try await Connection.connect(cluster.connectionString(), logger: testLogger)
        defer { Task { await connection.close() } }
        return try await connection.query("SELECT phase FROM drill ORDER BY id").rows.map { try $0.string("phase") }
    }

    func summaries(_ config: String) async throws -> [[String: Any]] {
        let listed = try await runProgram(osmosectl, ["backup", "list", "--json", "--config", config])
        return (try JSONSerialization.jsonObject(with: Data(listed.standardOutput.utf8)) as? [[String: Any]]) ?? []
    }

    /// The standard-tools script of docs/backup.md that rebuilds a cluster (between its
    /// `restore-cluster` markers), written beside `check-signature.sh` in `directory`.
    func documentedClusterRestore(in directory: String) throws -> String {
        _ = try documentedSignatureCheck(in: directory)
        let text = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/backup.md"), encoding: .utf8)
        let start = try #require(text.range(of: "<!-- restore-cluster:start -->"))
        let end = try #require(text.range(of: "<!-- restore-cluster:end -->"))
        let block = String(text[start.upperBound..<end.lowerBound])
        let open = try #require(block.range(of: "```sh\n"))
        let close = try #require(block.range(of: "```", range: open.upperBound..<block.endIndex))
        let path = "\(directory)/restore-cluster.sh"
        try String(block[open.upperBound..<close.lowerBound]).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let marker = "osmose-test-marker"

    @Test("A full then three incrementals of the cluster: a restore to a moment inside each incremental's WAL holds exactly the rows committed before it and replays only from that incremental; a data file rewritten with the same size and mtime comes back new; prune keeps the chain; age, bsdtar and PostgreSQL rebuild it too; a damaged archive in the chain refuses the restore, naming it, and leaves nothing")
    func pointInTimeAcrossIncrementals() async throws {
        let identity = try AgeIdentity.generate()
        try await withBackupCluster(
            "clusterincr", recipient: identity.recipient.encoded, identityFile: identity.exposedFile(created: "test"),
            extraBackupSettings: "  data_directory: DATADIR\n",
            prepare: { directory in
                try "keep:\n  last: 1\n  daily: 0\n  weekly: 0\n  monthly: 0\n  floor: 1\n".write(toFile: "\(directory)/policies/backup.yaml", atomically: true, encoding: .utf8)
            }
        ) { cluster, config in
            let directory = cluster.directory
            let markerPath = "\(cluster.dataDirectory)/\(Self.marker)"
            let original = String(repeating: "A", count: 8192)
            try original.write(toFile: markerPath, atomically: false, encoding: .utf8)
            try TestCluster.giveToOwner(cluster.dataDirectory)
            let connection = try await Connection.connect(cluster.connectionString(), logger: testLogger)
            try await connection.execute("CREATE TABLE drill (id serial PRIMARY KEY, phase text NOT NULL, filler text)")
            let full = try await cluster.asOwner([backupd, "full", "--config", config])
            #expect(full.status == 0, "\(full.standardError)")
            func now() async throws -> String {
                try await connection.query("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS t").rows[0].string("t")
            }
            var moments: [String] = []
            var expected: [[String]] = []
            var rewritten = ""
            for round in 1...3 {
                // Enough rows to change several data files between backups.
                try await connection.execute("INSERT INTO drill (phase, filler) SELECT '\(round)a', repeat('x', 200) FROM generate_series(1, 2000)")
                if round == 2 {
                    // A file of the data directory rewritten in place: same size, its mtime put back to the nanosecond.
                    var before = stat()
                    #expect(stat(markerPath, &before) == 0)
                    rewritten = String(repeating: "B", count: 8192)
                    try rewritten.write(toFile: markerPath, atomically: false, encoding: .utf8)
                    var times = [before.st_atim, before.st_mtim]
                    #expect(utimensat(AT_FDCWD, markerPath, &times, 0) == 0)
                }
                let incremental = try await cluster.asOwner([backupd, "incremental", "--config", config])
                #expect(incremental.status == 0, "round \(round): \(incremental.standardError)")
                try await connection.execute("INSERT INTO drill (phase) SELECT '\(round)b' FROM generate_series(1, 100)")
                try await Task.sleep(for: .milliseconds(50))
                moments.append(try await now())
                // Before this moment: every row of the earlier rounds, this round's a and b rows.
                let earlier = (1..<round).flatMap { [String](repeating: "\($0)a", count: 2000) + [String](repeating: "\($0)b", count: 100) + [String](repeating: "\($0)c", count: 100) }
                expected.append((earlier + [String](repeating: "\(round)a", count: 2000) + [String](repeating: "\(round)b", count: 100)).sorted())
                try await Task.sleep(for: .milliseconds(50))
                try await connection.execute("INSERT INTO drill (phase) SELECT '\(round)c' FROM generate_series(1, 100)")
            }
            try await archiveCurrentWAL(connection)
            await connection.close()
            await cluster.stop()

            let listed = try await summaries(config)
            #expect(listed.map { $0["kind"] as? String } == ["full", "incremental", "incremental", "incremental"])
            let ids = listed.compactMap { $0["id"] as? String }
            let walStarts = listed.compactMap { $0["walStart"] as? String }
            #expect(walStarts == walStarts.sorted() && Set(walStarts).count == 4, "each incremental starts its own WAL: \(walStarts)")
            // The incrementals store only some of the cluster's files.
            let counts = listed.compactMap { $0["memberCount"] as? Int }
            #expect(counts.dropFirst().allSatisfy { $0 < counts[0] / 2 }, "members: \(counts)")
            let verify = try await runProgram(osmosectl, ["backup", "verify", "--all", "--read-data", "--config", config])
            #expect(verify.status == 0 && verify.standardOutput.contains("backups verified: OK"), "\(verify.standardOutput)\(verify.standardError)")

            for (index, moment) in moments.enumerated() {
                let incrementalID = ids[index + 1]
                let dryRun = try await runProgram(osmosectl, ["backup", "restore", "--to", moment, "--target", "\(directory)/never", "--dry-run", "--config", config])
                #expect(dryRun.standardOutput.contains("from backup \(incrementalID)") && dryRun.standardOutput.contains("WAL \(walStarts[index + 1])"), "\(dryRun.standardOutput)\(dryRun.standardError)")
                let target = "\(directory)/restored-\(index + 1)"
                let restored = try await runProgram(osmosectl, ["backup", "restore", "--to", moment, "--target", target, "--config", config])
                #expect(restored.status == 0, "\(restored.standardOutput)\(restored.standardError)")
                #expect(try String(contentsOfFile: "\(target)/\(Self.marker)", encoding: .utf8) == (index == 0 ? original : rewritten), "incremental \(index + 1)")
                try await cluster.startAndPromote(target)
                #expect(try await phases(cluster).sorted() == expected[index], "restore to \(moment), inside incremental \(index + 1)'s WAL")
                await cluster.stop(dataDirectory: target)
            }

            // Prune keeps the newest and every backup holding its files; the chain still restores and verifies.
            try await cluster.start()
            let prune = try await cluster.asOwner([backupd, "prune", "--config", config])
            #expect(prune.status == 0, "\(prune.standardError)")
            await cluster.stop()
            let kept = try await summaries(config).compactMap { $0["id"] as? String }
            #expect(kept.first == ids[0] && kept.last == ids[3], "the full (holding unchanged files) and the newest: \(kept)")
            let afterPrune = try await runProgram(osmosectl, ["backup", "verify", "--all", "--read-data", "--config", config])
            #expect(afterPrune.status == 0, "\(afterPrune.standardOutput)\(afterPrune.standardError)")
            let latest = "\(directory)/restored-latest"
            let restoredLatest = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", latest, "--config", config])
            #expect(restoredLatest.status == 0, "\(restoredLatest.standardOutput)\(restoredLatest.standardError)")
            try await cluster.startAndPromote(latest)
            let all = try await phases(cluster)
            #expect(all.count == 3 * 2200, "\(all.count)")
            await cluster.stop(dataDirectory: latest)

            // The standard tools: the documented script rebuilds the newest incremental's cluster from its holders.
            let script = try documentedClusterRestore(in: directory)
            let configText = try String(contentsOfFile: config, encoding: .utf8)
            let key = try #require(configText.range(of: "verifier_keys: [\"").map { String(configText[$0.upperBound...].prefix { $0 != "\"" }) })
            let manual = "\(directory)/manual/pgdata"
            let rebuilt = try await runProgram("/bin/sh", [script, "\(directory)/store", ids[3], "\(directory)/identity.txt", key, "\(directory)/manual"])
            #expect(rebuilt.status == 0, "\(rebuilt.standardOutput)\(rebuilt.standardError)")
            let check = "\(directory)/check-signature.sh"
            let store = "\(directory)/store"
            try """
                restore_command = 'f=\(store)/wal/%f; test -f $f.tar.zst.age || exit 1; sh \(check) "\(key)" $f.sig $f.tar.zst.age || exit 255; age -d -i \(directory)/identity.txt $f.tar.zst.age | bsdtar -xOf - %f > %p'
                recovery_target_action = 'promote'
                archive_mode = 'off'

                """.write(toFile: "\(manual)/postgresql.auto.conf", atomically: true, encoding: .utf8)
            _ = FileManager.default.createFile(atPath: "\(manual)/recovery.signal", contents: Data())
            try await cluster.startAndPromote(manual)
            #expect(try await phases(cluster).count == 3 * 2200, "standard tools rebuild the latest state from the full and the incrementals")
            await cluster.stop(dataDirectory: manual)
            #expect(try String(contentsOfFile: "\(manual)/\(Self.marker)", encoding: .utf8) == rewritten)

            // The holders' archives are read at the same time: one damaged (the full, which
            // still holds the files no incremental changed) refuses the restore once every
            // reader has ended, and nothing is left in the target, not even the other holders' files.
            let fullArchive = "\(store)/base/\(ids[0])/data.tar.zst.age"
            var bytes = try Data(contentsOf: URL(fileURLWithPath: fullArchive))
            bytes[bytes.count / 2] ^= 0x10
            try bytes.write(to: URL(fileURLWithPath: fullArchive))
            let damaged = "\(directory)/restored-damaged"
            let refused = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", damaged, "--config", config])
            #expect(refused.status != 0 && refused.standardError.contains(ids[0]), "\(refused.status): \(refused.standardOutput)\(refused.standardError)")
            #expect((try? FileManager.default.contentsOfDirectory(atPath: damaged))?.isEmpty ?? true, "nothing restored from a chain with a damaged archive")
        }
    }

    @Test("osmose-backupd incremental of the cluster killed with SIGKILL mid-run (4 times) never lists an incomplete backup; the next run succeeds, everything verifies and restores", .tags(.crash), .skippedInFastRuns)
    func incrementalCrashes() async throws {
        let identity = try AgeIdentity.generate()
        try await withBackupCluster(
            "clusterincrcrash", recipient: identity.recipient.encoded, identityFile: identity.exposedFile(created: "test"),
            extraBackupSettings: "  data_directory: DATADIR\n"
        ) { cluster, config in
            let connection = try await Connection.connect(cluster.connectionString(), logger: testLogger)
            try await connection.execute("CREATE TABLE drill (id serial PRIMARY KEY, phase text NOT NULL, filler text)")
            try await connection.execute("INSERT INTO drill (phase, filler) SELECT 'base', md5(g::text) FROM generate_series(1, 100000) AS g")
            let full = try await cluster.asOwner([backupd, "full", "--config", config])
            #expect(full.status == 0, "\(full.standardError)")
            var random = TestSeed.generator(test: "cluster incremental crashes")
            var written = 100_000
            // Each run has work to do: new rows in several data files.
            let incrementals = try await killMidRun(backupd, ["incremental", "--config", config], kills: 4, random: &random) { round in
                let listed = try await summaries(config)
                let verify = try await runProgram(osmosectl, ["backup", "verify", "--all", "--config", config])
                #expect(verify.status == 0, "round \(round) (\(listed.count) backups): \(verify.standardOutput)\(verify.standardError)")
                try await connection.execute("INSERT INTO drill (phase, filler) SELECT 'round', md5(g::text) FROM generate_series(1, 50000) AS g")
                written += 50_000
            }
            #expect(incrementals.interrupted == 4, "kills landed mid-incremental: \(incrementals.interrupted) in \(incrementals.rounds) rounds")
            let final = try await runProgram(backupd, ["incremental", "--config", config])
            #expect(final.status == 0, "\(final.standardError)")
            let entries = try FileManager.default.contentsOfDirectory(atPath: "\(cluster.directory)/store/base")
            #expect(!entries.contains { $0.hasSuffix(".partial") }, "\(entries)")
            try await archiveCurrentWAL(connection)
            await connection.close()
            await cluster.stop()
            let verify = try await runProgram(osmosectl, ["backup", "verify", "--all", "--read-data", "--config", config])
            #expect(verify.status == 0 && verify.standardOutput.contains("backups verified: OK"), "\(verify.standardOutput)\(verify.standardError)")
            let latest = "\(cluster.directory)/restored"
            let restored = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", latest, "--config", config])
            #expect(restored.status == 0, "\(restored.standardOutput)\(restored.standardError)")
            try await cluster.startAndPromote(latest)
            #expect(try await phases(cluster).count == written)
            await cluster.stop(dataDirectory: latest)
        }
    }
}
