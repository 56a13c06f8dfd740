import Age
import Foundation
import Glibc
import Store
import Testing
import TestSupport

/// Pseudonymised patients leave no identifier and no free text behind: not in a
/// dump, not in the data files or the WAL after a checkpoint, not in a backup
/// taken afterwards (the canary scan of the care service's encryption-at-rest
/// test, on a cluster of its own whose files the test can read).
@Suite("Pseudonymisation at rest: the canary scan")
struct PseudonymisationAtRestTests {
    let osmosectl = builtExecutablesDirectory().appendingPathComponent("osmosectl").path
    let backupd = builtExecutablesDirectory().appendingPathComponent("osmose-backupd").path
    let retentiond = builtExecutablesDirectory().appendingPathComponent("osmose-retentiond").path
    let seeder = builtExecutablesDirectory().appendingPathComponent("osmose-retention-bench").path

    /// Files under `directory` (recursively) holding `needle`'s bytes.
    func files(under directory: String, holding needle: [UInt8]) throws -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
        var found: [String] = []
        for case let relative as String in walker {
            let path = "\(directory)/\(relative)"
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                let data = FileManager.default.contents(atPath: path)
            else { continue }
            if data.range(of: Data(needle)) != nil { found.append(relative) }
        }
        return found
    }

    @Test("No canary of a pseudonymised patient (names, birth date, INS, reasons, notes, transmissions, checklists, snapshots) in pg_dump, the data files, the WAL after a checkpoint, or a backup taken afterwards")
    func canaries() async throws {
        let identity = try AgeIdentity.generate()
        try await withBackupCluster("retcanary", recipient: identity.recipient.encoded, identityFile: identity.exposedFile(created: "test")) { cluster, config in
            let directory = cluster.directory
            try FileManager.default.copyItem(atPath: repositoryRoot.appendingPathComponent("policies/retention.yaml").path, toPath: "\(directory)/policies/retention.yaml")
            try FileManager.default.copyItem(atPath: repositoryRoot.appendingPathComponent("policies/backup.yaml").path, toPath: "\(directory)/policies/backup.yaml")
            let masterKey = "\(directory)/master.key"
            var text = try String(contentsOfFile: config, encoding: .utf8)
            text += "retention:\n  database: \"\(cluster.connectionString(user: "osmose_retention"))\"\n  master_key_file: \(masterKey)\n"
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            for arguments in [["keys", "generate-master", "--out", masterKey], ["keys", "init", "--master-key", masterKey, "--config", config], ["teams", "add", "sau", "Urgences", "--config", config]] {
                let outcome = try await runProgram(osmosectl, arguments)
                #expect(outcome.status == 0, "\(arguments): \(outcome.standardError)")
            }
            #expect(try await runProgram(osmosectl, ["users", "add", "cadre.sau", "--role", "manager", "--team", "sau", "--config", config], input: "manager-password-0123\n").status == 0)
            let admin = cluster.connectionString()
            // Six patients past their term, named and written about with the canary.
            let seed = try await runProgram(seeder, ["seed", "6", "--database", admin, "--master-key", masterKey, "--text", "Zyqwoxcanari", "--transmissions", "2"])
            #expect(seed.status == 0, "\(seed.standardError)")
            let connection = try await Connection.connect(admin, logger: testLogger)
            defer { Task { await connection.close() } }
            // What pseudonymisation will remove, as stored: none of these bytes may remain in a dump either.
            let removed = try await connection.query(
                """
                SELECT encode(v, 'hex') AS hex FROM (
                    SELECT unnest(ARRAY[last_name, first_name, birth_date, ins, search_name, search_ins]) AS v FROM care.patients
                    UNION ALL SELECT unnest(ARRAY[reason, imaging_note, activity_status]) FROM care.episodes
                    UNION ALL SELECT unnest(ARRAY[body, checklist]) FROM care.transmissions
                    UNION ALL SELECT snapshot FROM care.record_versions) AS values WHERE v IS NOT NULL
                """
            ).rows.map { try $0.string("hex") }
            // Per patient: names, birth date and name token (4), INS and its token for 2 of the 6; per episode 3 notes; per transmission 2; 4 snapshots.
            let expected: Int = 94
            #expect(removed.count == expected, "every value the seed wrote")

            let plan = try await runProgram(osmosectl, ["retention", "plan", "--json", "--config", config])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(plan.standardOutput.utf8)) as? [String: Any], "\(plan.standardError)")
            let approve = try await runProgram(
                osmosectl, ["retention", "approve", "\(object["id"] as? Int ?? 0)", "--sha256", object["sha256"] as? String ?? "", "--approver", "Jeanne Martin", "--config", config])
            #expect(approve.status == 0, "\(approve.standardError)")
            let run = try await runProgram(retentiond, ["--config", config])
            #expect(run.status == 0, "\(run.standardError)")
            #expect(try await connection.query("SELECT count(*) AS n FROM care.patients WHERE pseudonymised_at IS NOT NULL").rows[0].int("n") == 6)
            try await connection.execute("CHECKPOINT")
            _ = try await connection.query("SELECT pg_switch_wal()")
            try await connection.execute("CHECKPOINT")

            var canaries = ["Zyqwoxcanari", "ZYQWOXCANARI", "zyqwoxcanari", "Zyqwox"]
            for index in 0..<6 {
                let number = 2_400_175_000_000 + index
                if index % 3 == 0 { canaries.append("\(number)\(String(format: "%02d", 97 - number % 97))") }
                canaries.append(String(format: "19%02d-%02d-%02d", 30 + index % 60, index % 12 + 1, index % 28 + 1))
            }
            let dump = try await runProgram("/usr/bin/pg_dump", ["-d", admin])
            #expect(dump.status == 0 && dump.standardOutput.contains("care.patients"), "\(dump.standardError)")
            for canary in canaries { #expect(!dump.standardOutput.contains(canary), "pg_dump holds \(canary)") }
            for hex in removed { #expect(!dump.standardOutput.contains(hex), "pg_dump still holds a removed value") }

            let data = cluster.dataDirectory
            for canary in canaries {
                #expect(try files(under: "\(data)/base", holding: Array(canary.utf8)).isEmpty, "data files hold \(canary)")
                #expect(try files(under: "\(data)/pg_wal", holding: Array(canary.utf8)).isEmpty, "the WAL holds \(canary)")
            }
            // Control: a value stored in clear is found, so the scan can see.
            #expect(!(try files(under: "\(data)/base", holding: Array("cadre.sau".utf8))).isEmpty, "the scan finds a login name stored in clear")
            // The removed ciphertexts themselves (unreadable without the column key of their day): VACUUM prunes
            // the dead row versions but leaves their bytes in the pages' free space, and the planner's statistics
            // (pg_statistic) keep sampled values, whose old versions linger in turn; `osmosectl retention compact`,
            // which the runbook gives the sysadmin after a run (docs/retention.md), rewrites the tables and their
            // statistics and removes them.
            func remnants(under directory: String) throws -> Int {
                try removed.filter { hex in
                    let bytes = stride(from: 0, to: hex.count, by: 2).map { UInt8(hex.dropFirst($0).prefix(2), radix: 16)! }
                    return !(try files(under: directory, holding: bytes)).isEmpty
                }.count
            }
            let tables = ["care.patients", "care.episodes", "care.transmissions", "care.record_versions"]
            for table in tables { try await connection.execute("VACUUM \(table)") }
            try await connection.execute("CHECKPOINT")
            print("removed values still in the data files after VACUUM: \(try remnants(under: "\(data)/base")) of \(removed.count)")
            let compact = try await runProgram(osmosectl, ["retention", "compact", "--config", config])
            #expect(compact.status == 0 && compact.standardOutput.contains("care.record_versions") && !compact.standardOutput.contains("not rewritten"), "\(compact.standardError)")
            #expect(try remnants(under: "\(data)/base") == 0, "no removed value in the data files after VACUUM FULL")

            // A backup taken afterwards, decrypted with the offline identity: the cluster's files and the archived WAL.
            let full = try await cluster.asOwner([backupd, "full", "--config", config])
            #expect(full.status == 0, "\(full.standardOutput)\(full.standardError)")
            try await archiveCurrentWAL(connection)
            let restoredFiles = "\(directory)/backup-contents"
            try FileManager.default.createDirectory(atPath: restoredFiles, withIntermediateDirectories: true)
            let extract = try await runProgram(
                "/bin/sh",
                [
                    "-c",
                    """
                    set -e
                    for archive in "$0"/store/base/*/data.tar.zst.age; do age -d -i "$0/identity.txt" "$archive" | bsdtar -xf - -C "$1"; done
                    mkdir -p "$1/wal"
                    for segment in "$0"/store/wal/*.tar.zst.age; do age -d -i "$0/identity.txt" "$segment" | bsdtar -xf - -C "$1/wal"; done
                    """,
                    directory, restoredFiles,
                ])
            #expect(extract.status == 0, "\(extract.standardError)")
            #expect(!(try files(under: restoredFiles, holding: Array("cadre.sau".utf8))).isEmpty, "the backup holds the control")
            for canary in canaries { #expect(try files(under: restoredFiles, holding: Array(canary.utf8)).isEmpty, "the backup holds \(canary)") }
            #expect(try remnants(under: "\(restoredFiles)/pgdata") == 0, "the backup's data files hold no removed value")
        }
    }
}
