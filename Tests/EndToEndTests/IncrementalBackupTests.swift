import Age
import Foundation
import Glibc
import Store
import Testing
import TestSupport

/// Incremental backups of the suite's file trees: only what changed since the
/// parent is written, each backup lists the whole tree, a restore rebuilds the tree
/// of the chosen moment (deletions included), prune keeps what a kept backup needs
/// and leaves a tombstone that keeps the catalogue chain verifiable.
@Suite("Incremental backups end to end", .serialized)
struct IncrementalBackupTests {
    let backupd = builtExecutablesDirectory().appendingPathComponent("osmose-backupd").path
    let osmosectl = builtExecutablesDirectory().appendingPathComponent("osmosectl").path


    func write(_ text: String, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    /// The files under `directory`, relative path → content.
    func contents(_ directory: String) throws -> [String: String] {
        var found: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: directory)
        while let path = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: "\(directory)/\(path)", isDirectory: &isDirectory), !isDirectory.boolValue {
                found[path] = try String(contentsOfFile: "\(directory)/\(path)", encoding: .utf8)
            }
        }
        return found
    }

    func summaries(_ osmosectl: String, _ config: String) async throws -> [[String: Any]] {
        let listed = try await runProgram(osmosectl, ["backup", "list", "--json", "--config", config])
        return (try JSONSerialization.jsonObject(with: Data(listed.standardOutput.utf8)) as? [[String: Any]]) ?? []
    }

    @Test("A full then two incrementals: each incremental stores only the changed files; restores to a moment between them and to latest rebuild exactly that tree (deleted files stay deleted); prune keeps the base; a missing base is named by verify and refused by restore")
    func incrementalFileTrees() async throws {
        let identity = try AgeIdentity.generate()
        try await withBackupCluster(
            "incremental", recipient: identity.recipient.encoded, identityFile: identity.exposedFile(created: "test"), extraBackupSettings: "  file_trees: [ARCHIVES]\n", prepare: { directory in
            try write("keep:\n  last: 1\n  daily: 0\n  weekly: 0\n  monthly: 0\n  floor: 1\n", "\(directory)/policies/backup.yaml")
            try write("a1", "\(directory)/archives/a.txt")
            try write("b1", "\(directory)/archives/b.txt")
            try write("d1", "\(directory)/archives/d.txt")
            try write("k1", "\(directory)/archives/2026/keep.txt")
        }) { cluster, config in
            let directory = cluster.directory
            let tree = "\(directory)/archives"

            // An incremental needs a full one first.
            let early = try await cluster.asOwner([backupd, "incremental", "--config", config])
            #expect(early.status == 1 && early.standardError.contains("run osmose-backupd full first"), "\(early.standardError)")
            let full = try await cluster.asOwner([backupd, "full", "--config", config])
            #expect(full.status == 0, "\(full.standardError)")

            // Changed: a (content), b (deleted), c (new), d (touched, same content).
            try write("a2", "\(tree)/a.txt")
            try FileManager.default.removeItem(atPath: "\(tree)/b.txt")
            try write("c2", "\(tree)/c.txt")
            try write("d1", "\(tree)/d.txt")
            try TestCluster.giveToOwner(directory)
            let first = try await cluster.asOwner([backupd, "incremental", "--config", config])
            #expect(first.status == 0, "\(first.standardError)")
            // Backup times are precise to the millisecond: a few milliseconds apart are enough.
            try await Task.sleep(for: .milliseconds(20))
            let precise = ISO8601DateFormatter()
            precise.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let between = precise.string(from: Date())
            try await Task.sleep(for: .milliseconds(20))
            try write("a3", "\(tree)/a.txt")
            try FileManager.default.removeItem(atPath: "\(tree)/c.txt")
            try write("e3", "\(tree)/sub/e.txt")
            try TestCluster.giveToOwner(directory)
            let second = try await cluster.asOwner([backupd, "incremental", "--config", config])
            #expect(second.status == 0, "\(second.standardError)")

            let listed = try await summaries(osmosectl, config)
            #expect(listed.map { $0["kind"] as? String } == ["full", "incremental", "incremental"])
            let ids = listed.compactMap { $0["id"] as? String }
            // Only the changed files: a and c in the first, a and e in the second; both build on the full.
            #expect(listed.dropFirst().map { $0["memberCount"] as? Int } == [2, 2], "\(listed)")
            #expect(listed.dropFirst().allSatisfy { $0["base"] as? String == ids.first })
            #expect((listed.last?["references"] as? [String]) == [ids[0]], "the second holds d and keep.txt through the full, nothing through the first")

            // Recorded in ops.backups with what each needs.
            let connection = try await Connection.connect(cluster.connectionString(), logger: testLogger)
            let rows = try await connection.query("SELECT kind, coalesce(base, '') AS base, array_to_string(needs, ',') AS needs FROM ops.backups ORDER BY id").rows
            #expect(try rows.map { try $0.string("kind") } == ["full", "incremental", "incremental"])
            #expect(try rows.dropFirst().allSatisfy { try $0.string("base") == ids[0] && $0.string("needs") == ids[0] })
            await connection.close()

            let verify = try await runProgram(osmosectl, ["backup", "verify", "--all", "--config", config])
            #expect(verify.status == 0 && verify.standardOutput.contains("backups verified: OK"), "\(verify.standardOutput)\(verify.standardError)")

            // Between the incrementals: the tree as the first saw it. Latest: as the second did.
            let dryRun = try await runProgram(osmosectl, ["backup", "restore", "--to", between, "--target", "\(directory)/never", "--files", "\(directory)/never-files", "--dry-run", "--config", config])
            #expect(dryRun.standardOutput.contains("from backup \(ids[0])") && dryRun.standardOutput.contains("backup \(ids[1]) lists"), "\(dryRun.standardOutput)\(dryRun.standardError)")
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/never"))
            let atFirst = "\(directory)/files-first"
            let restoredFirst = try await runProgram(osmosectl, ["backup", "restore", "--to", between, "--target", "\(directory)/data-first", "--files", atFirst, "--config", config])
            #expect(restoredFirst.status == 0, "\(restoredFirst.standardOutput)\(restoredFirst.standardError)")
            let firstTree = try contents("\(atFirst)/tree-0-archives")
            #expect(firstTree == ["a.txt": "a2", "c.txt": "c2", "d.txt": "d1", "2026/keep.txt": "k1"], "\(firstTree)")
            #expect(FileManager.default.fileExists(atPath: "\(atFirst)/osmose.yaml") && FileManager.default.fileExists(atPath: "\(atFirst)/policies/backup.yaml"))
            #expect(FileManager.default.fileExists(atPath: "\(directory)/data-first/PG_VERSION"), "the cluster came from the full backup")
            // The same tree with the standard tools only, as docs/backup.md says.
            let standard = "\(directory)/standard"
            try FileManager.default.createDirectory(atPath: standard, withIntermediateDirectories: true)
            let script = """
                set -eo pipefail; cd \(standard)
                for id in \(ids[0]) \(ids[1]); do age -d -i \(directory)/identity.txt \(directory)/store/base/$id/data.tar.zst.age | bsdtar -xf - suite; done
                age -d -i \(directory)/identity.txt \(directory)/store/base/\(ids[1])/manifest.json.age \\
                  | python3 -c 'import json,sys; print("\\n".join(e["path"] for e in json.load(sys.stdin)["tree"]))' | sort > listed
                find suite -mindepth 1 | sort | comm -23 - listed | xargs -r rm -rf
                """
            let standardRun = try await runProgram("/bin/bash", ["-c", script])
            #expect(standardRun.status == 0, "\(standardRun.standardError)")
            #expect(try contents("\(standard)/suite/tree-0-archives") == firstTree, "age | bsdtar and the tree list give the same files")
            let atLatest = "\(directory)/files-latest"
            let restoredLatest = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", "\(directory)/data-latest", "--files", atLatest, "--config", config])
            #expect(restoredLatest.status == 0, "\(restoredLatest.standardOutput)\(restoredLatest.standardError)")
            #expect(try contents("\(atLatest)/tree-0-archives") == ["a.txt": "a3", "d.txt": "d1", "sub/e.txt": "e3", "2026/keep.txt": "k1"])

            // Prune keeps the newest and its base, removes the first incremental, and the chain still verifies through its tombstone.
            let plan = try await runProgram(backupd, ["prune", "--dry-run", "--config", config])
            #expect(plan.standardOutput.contains("needed by \(ids[2])") && plan.standardOutput.contains("would remove \(ids[1])"), "\(plan.standardOutput)\(plan.standardError)")
            let prune = try await cluster.asOwner([backupd, "prune", "--config", config])
            #expect(prune.status == 0, "\(prune.standardError)")
            #expect(try await summaries(osmosectl, config).compactMap { $0["id"] as? String } == [ids[0], ids[2]])
            let afterPrune = try await runProgram(osmosectl, ["backup", "verify", "--all", "--config", config])
            #expect(afterPrune.status == 0, "\(afterPrune.standardOutput)\(afterPrune.standardError)")

            // Without the parent's local tree (it is only an accelerator) the next incremental writes every file again.
            try FileManager.default.removeItem(atPath: "\(directory)/store/base/\(ids[2])/tree.local.json")
            let third = try await cluster.asOwner([backupd, "incremental", "--config", config])
            #expect(third.status == 0, "\(third.standardError)")
            let afterThird = try await summaries(osmosectl, config)
            #expect(afterThird.last?["memberCount"] as? Int == 6 && afterThird.last?["references"] == nil, "osmose.yaml, backup.yaml, a, d, keep, e: \(afterThird.last ?? [:])")
            #expect(try await runProgram(osmosectl, ["backup", "verify", "--all", "--config", config]).status == 0)
            // A summary edited on the backup host no longer matches what its signature states.
            let thirdID = try #require(afterThird.last?["id"] as? String)
            let summaryPath = "\(directory)/store/base/\(thirdID)/summary.json"
            let original = try String(contentsOfFile: summaryPath, encoding: .utf8)
            try original.replacingOccurrences(of: "\"kind\" : \"incremental\"", with: "\"kind\" : \"full\"").write(toFile: summaryPath, atomically: true, encoding: .utf8)
            let edited = try await runProgram(osmosectl, ["backup", "verify", "--config", config])
            #expect(edited.status == 5 && edited.standardOutput.contains("FAIL base/\(thirdID)/summary.json: differs from what base/\(thirdID)/backup.sig signs"), "\(edited.standardOutput)")
            try original.write(toFile: summaryPath, atomically: true, encoding: .utf8)

            // The base gone (without a prune): verify names it, restore refuses and leaves nothing.
            let baseDirectory = "\(directory)/store/base/\(ids[0])"
            try FileManager.default.moveItem(atPath: baseDirectory, toPath: "\(directory)/moved-base")
            let broken = try await runProgram(osmosectl, ["backup", "verify", "--all", "--config", config])
            #expect(broken.status == 5 && broken.standardOutput.contains("builds on the full backup \(ids[0]), which is not in the store"), "\(broken.standardOutput)")
            #expect(broken.standardOutput.contains("base/\(ids[2])/suite/tree-0-archives/d.txt"), "the file held by the missing backup is named: \(broken.standardOutput)")
            let refused = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", "\(directory)/data-refused", "--config", config])
            #expect(refused.status != 0 && refused.standardError.contains("which is not in the store: restore refused"), "\(refused.standardError)")
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/data-refused")) ?? []).isEmpty)
        }
    }

    @Test("backup.data_directory: a full backup copies the data directory between pg_backup_start and pg_backup_stop while rows are written; it holds the backup label, leaves out postmaster.pid and the WAL, verifies with --read-data, and restores every committed row; a non-superuser needs only migration 0012's grant")
    func directCopy() async throws {
        let identity = try AgeIdentity.generate()
        try await withBackupCluster(
            "directcopy", recipient: identity.recipient.encoded, identityFile: identity.exposedFile(created: "test"), extraBackupSettings: "") { cluster, config in
            let directory = cluster.directory
            // The backup role: not a superuser; LOGIN, member of osmose_backup.
            let admin = try await Connection.connect(cluster.connectionString(), logger: testLogger)
            try await admin.execute("CREATE ROLE backup_login LOGIN IN ROLE osmose_backup; CREATE TABLE written (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), pad text)")
            var text = try String(contentsOfFile: config, encoding: .utf8)
            text += "  data_directory: \(cluster.dataDirectory)\n  database: \"\(cluster.connectionString(user: "backup_login"))\"\n"
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            // Rows keep coming while the files are copied.
            let writer = Task {
                let connection = try await Connection.connect(cluster.connectionString(), logger: testLogger)
                defer { Task { await connection.close() } }
                var committed = 0
                while !Task.isCancelled {
                    try await connection.execute("INSERT INTO written (pad) SELECT repeat('x', 500) FROM generate_series(1, 200)")
                    committed += 200
                }
                return committed
            }
            try await Task.sleep(for: .milliseconds(300))
            let full = try await cluster.asOwner([backupd, "full", "--config", config])
            writer.cancel()
            let committed = try await writer.value
            #expect(full.status == 0, "\(full.standardOutput)\(full.standardError)")
            let manifest = try await runProgram(osmosectl, ["backup", "show", "--config", config] + [try #require(try await summaries(osmosectl, config).last?["id"] as? String)])
            let members = manifest.standardOutput
            #expect(members.contains("\"pgdata/backup_label\"") && members.contains("\"pgdata/PG_VERSION\"") && members.contains("\"pgdata/global/pg_control\""), "\(members.prefix(400))")
            #expect(!members.contains("postmaster.pid") && !members.contains("\"pgdata/pg_wal/0000"), "no server state, no WAL")
            for mode in [[], ["--read-data"]] {
                let verify = try await runProgram(osmosectl, ["backup", "verify"] + mode + ["--config", config])
                #expect(verify.status == 0, "\(mode): \(verify.standardOutput)\(verify.standardError)")
            }
            // Every row committed before the end: all of them after a restore to latest.
            let before = try await admin.query("SELECT count(*) AS n FROM written").rows[0].int("n")
            #expect(before >= committed && committed > 0)
            try await archiveCurrentWAL(admin)
            await admin.close()
            await cluster.stop()
            let restored = "\(directory)/restored"
            let restore = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", restored, "--config", config])
            #expect(restore.status == 0, "\(restore.standardOutput)\(restore.standardError)")
            #expect(FileManager.default.fileExists(atPath: "\(restored)/backup_label") && FileManager.default.fileExists(atPath: "\(restored)/pg_wal/archive_status"))
            // A restore onto another file system (ramfs, which keeps everything in the page cache and
            // refuses O_DIRECT) gives byte for byte the same files.
            let ramfs = "\(directory)/ramfs"
            try FileManager.default.createDirectory(atPath: ramfs, withIntermediateDirectories: true)
            let mounted = try await runProgram("/bin/mount", ["-t", "ramfs", "osmose-test", ramfs])
            #expect(mounted.status == 0, "the test mounts a ramfs (as root): \(mounted.standardError)")
            defer { _ = umount(ramfs) }
            let onRamfs = "\(ramfs)/restored"
            let ramfsRestore = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", onRamfs, "--config", config])
            #expect(ramfsRestore.status == 0, "\(ramfsRestore.standardError)")
            let compared = try await runProgram("/usr/bin/diff", ["-r", "--no-dereference", restored, onRamfs])
            #expect(compared.status == 0, "\(compared.standardOutput.prefix(500))")
            var sizes: Set<Int> = []
            for path in FileManager.default.enumerator(atPath: restored)?.compactMap({ $0 as? String }) ?? [] {
                if let size = try? FileManager.default.attributesOfItem(atPath: "\(restored)/\(path)")[.size] as? Int, size % 4096 != 0 { sizes.insert(size) }
            }
            #expect(sizes.count > 3, "files whose size is not a whole number of pages were restored (the padded, truncated last block): \(sizes.sorted().prefix(5))")
            try await cluster.startAndPromote(restored)
            let check = try await Connection.connect(cluster.connectionString(), logger: testLogger)
            let after = try await check.query("SELECT count(*) AS n FROM written").rows[0].int("n")
            await check.close()
            #expect(after == before, "every committed row restored: \(after) of \(before)")
            await cluster.stop(dataDirectory: restored)
        }
    }

    @Test("A full backup to a hybrid post-quantum recipient (age1pq1…) is sealed with mlkem768x25519 stanzas, verifies and restores with its identity; WAL too")
    func postQuantumBackup() async throws {
        let identity = try AgeHybridIdentity.generate()
        try await withBackupCluster("pqbackup", recipient: identity.recipient.encoded, identityFile: identity.exposedFile(created: "test")) { cluster, config in
            let directory = cluster.directory
            let full = try await cluster.asOwner([backupd, "full", "--config", config])
            #expect(full.status == 0, "\(full.standardError)")
            let id = try #require(try await summaries(osmosectl, config).first?["id"] as? String)
            let header = try String(decoding: Data(contentsOf: URL(fileURLWithPath: "\(directory)/store/base/\(id)/data.tar.zst.age")).prefix(200), as: UTF8.self)
            #expect(header.hasPrefix("age-encryption.org/v1\n-> mlkem768x25519 "), "\(header.prefix(60))")
            let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/store/wal").first { $0.hasSuffix(".tar.zst.age") })
            let walHeader = try String(decoding: Data(contentsOf: URL(fileURLWithPath: "\(directory)/store/wal/\(segment)")).prefix(60), as: UTF8.self)
            #expect(walHeader.contains("-> mlkem768x25519 "))
            for mode in [[], ["--read-data"]] {
                let verify = try await runProgram(osmosectl, ["backup", "verify", "--all"] + mode + ["--config", config])
                #expect(verify.status == 0 && verify.standardOutput.contains("backups verified: OK"), "\(mode): \(verify.standardOutput)\(verify.standardError)")
            }
            let restored = try await runProgram(osmosectl, ["backup", "restore", "--to", "latest", "--target", "\(directory)/restored", "--files", "\(directory)/files", "--config", config])
            #expect(restored.status == 0, "\(restored.standardOutput)\(restored.standardError)")
            #expect(FileManager.default.fileExists(atPath: "\(directory)/restored/PG_VERSION") && FileManager.default.fileExists(atPath: "\(directory)/files/osmose.yaml"))
            // A classic identity opens none of it.
            try AgeIdentity.generate().exposedFile(created: "test").write(toFile: "\(directory)/classic.txt", atomically: true, encoding: .utf8)
            let wrong = try await runProgram(osmosectl, ["backup", "verify", "--identity", "\(directory)/classic.txt", "--config", config])
            #expect(wrong.status == 5, "\(wrong.standardOutput)")
        }
    }
}

/// Runs `body` with a started cluster archiving its WAL with osmose-backupd into
/// `<directory>/store`, encrypted to `recipient`, signed with a backup-signing key of
/// its own (trusted by the configuration), with its own policies directory; migrated. The cluster is destroyed on every path (a failed `#require` too).
func withBackupCluster<Result>(
    _ label: String, recipient: String, identityFile: String, extraBackupSettings: String = "", prepare: (String) throws -> Void = { _ in },
    _ body: (TestCluster, String) async throws -> Result
) async throws -> Result {
    try await TestCluster.with(label) { cluster in
        let config = try await configureBackupCluster(
            cluster, recipient: recipient, identityFile: identityFile, extraBackupSettings: extraBackupSettings, prepare: prepare)
        return try await body(cluster, config)
    }
}

/// Configures and starts `cluster` for ``withBackupCluster``; returns its configuration file.
private func configureBackupCluster(
    _ cluster: TestCluster, recipient: String, identityFile: String, extraBackupSettings: String, prepare: (String) throws -> Void
) async throws -> String {
    let backupd = builtExecutablesDirectory().appendingPathComponent("osmose-backupd").path
    let osmosectl = builtExecutablesDirectory().appendingPathComponent("osmosectl").path
    let directory = cluster.directory
    let config = "\(directory)/osmose.yaml"
    try cluster.appendSettings("archive_mode = on\narchive_command = '\(backupd) wal-push --config \(config) %p %f'")
    let signing = try BackupSigningKey(in: directory)
    try """
        database:
          connection: "\(cluster.connectionString())"
        paths:
          policies: \(directory)/policies
        backup:
          store: \(directory)/store
          recipients: ["\(recipient)"]
          identity_file: \(directory)/identity.txt

        """.appending(signing.settings).appending(
            extraBackupSettings.replacingOccurrences(of: "ARCHIVES", with: "\(directory)/archives").replacingOccurrences(of: "DATADIR", with: cluster.dataDirectory))
        .write(toFile: config, atomically: true, encoding: .utf8)
    try identityFile.write(toFile: "\(directory)/identity.txt", atomically: true, encoding: .utf8)
    try FileManager.default.createDirectory(atPath: "\(directory)/policies", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: "\(directory)/store/wal", withIntermediateDirectories: true)
    try prepare(directory)
    try TestCluster.giveToOwner(directory)
    try await cluster.start()
    #expect(try await runProgram(osmosectl, ["db", "migrate", "--config", config]).status == 0)
    return config
}

/// Switches to a new WAL segment and waits until the one that was being written
/// is archived: everything committed so far is then in the backup store.
/// - Returns: that segment's name.
@discardableResult
func archiveCurrentWAL(_ connection: Connection) async throws -> String {
    let last = try await connection.query("SELECT pg_walfile_name(pg_current_wal_lsn()) AS w").rows[0].string("w")
    _ = try await connection.query("SELECT pg_switch_wal()")
    try await waitUntil("the WAL to be archived", timeout: .seconds(90)) {
        try await connection.query("SELECT coalesce(last_archived_wal, '') >= $1 AS done FROM pg_stat_archiver", [last]).rows[0].bool("done")
    }
    return last
}
