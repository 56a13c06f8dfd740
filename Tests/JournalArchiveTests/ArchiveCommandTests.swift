import Foundation
import Journal
import JournalArchive
import Store
import Testing
import TestSupport

extension ArchiveFixture {
    /// A configuration for osmosectl: the database as its owner, the log's verifier key,
    /// the archive directories, recipient and identity.
    func writeConfiguration(directories: [String]? = nil, recipients: [String]? = nil) throws -> String {
        let path = "\(scratch)/osmose-\(UUID().uuidString.prefix(8)).yaml"
        let directories = (directories ?? self.directories).map { "\"\($0)\"" }.joined(separator: ", ")
        let recipients = (recipients ?? [identity.recipient.encoded]).map { "\"\($0)\"" }.joined(separator: ", ")
        try """
            database:
              connection: "\(database.connectionString)"
            journal:
              origin: journal.archive.example
              verifier_keys: ["\(signer.verifierKey.encoded)"]
            archives:
              directories: [\(directories)]
              recipients: [\(recipients)]
              identity_file: \(identityFile)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs osmosectl with this configuration.
    func osmosectl(_ arguments: [String], config: String) async throws -> ProcessOutcome {
        try await runProgram(JournalArchiveTests.osmosectl, arguments + ["--config", config])
    }

    /// Decrypts and extracts an archive with age and bsdtar into a new directory; returns it.
    func extract(_ archive: String) async throws -> String {
        let directory = "\(scratch)/extracted-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let tar = "\(directory).tar.zst"
        let decrypted = try await runProgram("/usr/bin/age", ["-d", "-i", identityFile, "-o", tar, archive])
        #expect(decrypted.status == 0, "\(decrypted.standardError)")
        let extracted = try await runProgram("/usr/bin/bsdtar", ["-xf", tar, "-C", directory])
        #expect(extracted.status == 0, "\(extracted.standardError)")
        return directory
    }

    /// Runs the independent C2SP verifier (aics-tlog) on an extracted archive.
    func independentlyVerify(_ directory: String) async throws -> ProcessOutcome {
        try await runProgram(
            "/usr/bin/env",
            ["python3", repositoryRoot.appendingPathComponent("scripts/interop/verify-c2sp.py").path, "--vkey", signer.verifierKey.encoded, "--archive", directory])
    }
}

enum JournalArchiveTests {
    static let osmosectl = builtExecutablesDirectory().appendingPathComponent("osmosectl").path
}

@Suite("osmosectl journal archive, run as the sysadmin runs it")
struct ArchiveCommandTests {
    @Test("list, write, verify and purge from the command line; verify, search and show after the purge; the independent C2SP verifier accepts the archive")
    func commands() async throws {
        try await ArchiveFixture.with("archive_cli") { fixture in
            let config = try fixture.writeConfiguration()
            let list = try await fixture.osmosectl(["journal", "archive", "list"], config: config)
            #expect(list.status == 0 && list.standardOutput.contains("2025-01  online   0      699"), "\(list.standardOutput)\(list.standardError)")

            let early = try await fixture.osmosectl(["journal", "archive", "purge", "2025-01"], config: config)
            #expect(early.status == 1 && early.standardError.contains("2025-01 has no verified archive recorded"), "\(early.standardError)")
            let current = try await fixture.osmosectl(["journal", "archive", "write", "2025-03"], config: config)
            #expect(current.status == 1 && current.standardError.contains("2025-03 is not over"), "\(current.standardError)")
            let malformed = try await fixture.osmosectl(["journal", "archive", "write", "2025-13"], config: config)
            #expect(malformed.status == 64 && malformed.standardError.contains("not a month"), "\(malformed.standardError)")

            let dryRun = try await fixture.osmosectl(["journal", "archive", "write", "2025-01", "--dry-run"], config: config)
            #expect(dryRun.status == 0 && dryRun.standardOutput.hasPrefix("would archive 2025-01: entries 0…699 (700)"), "\(dryRun.standardOutput)\(dryRun.standardError)")
            let write = try await fixture.osmosectl(["journal", "archive", "write", "2025-01"], config: config)
            #expect(write.status == 0 && write.standardOutput.hasPrefix("archived 2025-01: entries 0…699 (700), 3 checkpoints (covering #3)"), "\(write.standardOutput)\(write.standardError)")
            let archive = "\(fixture.directories[1])/journal.archive.example-journal-2025-01.tar.zst.age"

            let verify = try await fixture.osmosectl(["journal", "verify", "--archive", archive], config: config)
            #expect(verify.status == 0 && verify.standardOutput.contains("archive verified: OK") && verify.standardOutput.contains("compared with the online journal"), "\(verify.standardOutput)\(verify.standardError)")
            let alone = try await fixture.osmosectl(["journal", "archive", "verify", "--archive", archive, "--no-online", "--signatures", "covering"], config: config)
            #expect(alone.status == 0 && alone.standardOutput.contains("checked 700 entries, 3 checkpoints against the tree (1 signatures)"), "\(alone.standardOutput)\(alone.standardError)")

            let purgePlan = try await fixture.osmosectl(["journal", "archive", "purge", "2025-01", "--dry-run"], config: config)
            #expect(purgePlan.status == 0 && purgePlan.standardOutput.hasPrefix("would purge 2025-01"), "\(purgePlan.standardOutput)\(purgePlan.standardError)")
            let purge = try await fixture.osmosectl(["journal", "archive", "purge", "2025-01"], config: config)
            #expect(purge.status == 0 && purge.standardOutput.hasPrefix("purged 2025-01: 700 entries (entries 0…699) removed"), "\(purge.standardOutput)\(purge.standardError)")

            try await fixture.sequenceIntake(at: ArchiveFixture.time(ArchiveFixture.march, day: 21))
            try await fixture.checkpoint(at: ArchiveFixture.time(ArchiveFixture.march, day: 21, hour: 13))
            let journal = try await fixture.osmosectl(["journal", "verify", "--no-witnesses"], config: config)
            #expect(journal.status == 0 && journal.standardOutput.contains("journal verified: OK"), "\(journal.standardOutput)\(journal.standardError)")
            #expect(journal.standardOutput.contains("archived entries 0…699 (2025-01): journal.archive.example-journal-2025-01.tar.zst.age in \(fixture.directories.joined(separator: ", "))"))
            #expect(journal.standardOutput.contains("purge journaled at seq"), "\(journal.standardOutput)")

            let search = try await fixture.osmosectl(["journal", "search", "--from", "2025-01-10", "--to", "2025-01-20"], config: config)
            #expect(search.status == 0 && search.standardOutput.contains("0 entries") && search.standardOutput.contains("were purged and not searched: they are in journal.archive.example-journal-2025-01.tar.zst.age"), "\(search.standardOutput)")
            let show = try await fixture.osmosectl(["journal", "show", "12"], config: config)
            #expect(show.status == 1 && show.standardError.contains("entry 12 was purged with 2025-01"), "\(show.standardError)")
            let listed = try await fixture.osmosectl(["journal", "archive", "list", "--json"], config: config)
            let months = try JSONSerialization.jsonObject(with: Data(listed.standardOutput.utf8)) as? [[String: Any]]
            #expect(months?.map { $0["state"] as? String } == ["purged", "online", "current"], "\(listed.standardOutput)")

            // The journal holds what was done, by whom: the archive, the purge and the verification.
            let events = try await fixture.admin.query(
                "SELECT action FROM journal.entries WHERE action = 'retention-admin' OR (action = 'read' AND purpose = 'audit') ORDER BY seq"
            ).rows.map { try $0.string("action") }
            #expect(events == ["retention-admin", "read", "retention-admin"], "archived, verified, purged: \(events)")

            let extracted = try await fixture.extract(archive)
            let independent = try await fixture.independentlyVerify(extracted)
            #expect(independent.status == 0 && independent.standardOutput.contains("ok archive: 2025-01"), "\(independent.standardOutput)\(independent.standardError)")
        }
    }

    @Test("A month of more than 65,536 entries (full tiles at level 1): archived, verified by osmosectl and by the independent verifier, purged")
    func largeMonth() async throws {
        try await ArchiveFixture.with("archive_large", januaryBulk: 70_000) { fixture in
            let config = try fixture.writeConfiguration()
            let write = try await fixture.osmosectl(["journal", "archive", "write", "2025-01"], config: config)
            #expect(write.status == 0 && write.standardOutput.hasPrefix("archived 2025-01: entries 0…70699 (70700)"), "\(write.standardOutput)\(write.standardError)")
            let archive = "\(fixture.directories[0])/journal.archive.example-journal-2025-01.tar.zst.age"
            let verify = try await fixture.osmosectl(["journal", "archive", "verify", "--archive", archive], config: config)
            #expect(verify.status == 0 && verify.standardOutput.contains("checked 70700 entries"), "\(verify.standardOutput)\(verify.standardError)")
            let extracted = try await fixture.extract(archive)
            let tiles = try FileManager.default.subpathsOfDirectory(atPath: "\(extracted)/journal-2025-01/tile").filter { !$0.hasSuffix("/") }
            #expect(tiles.contains("1/000") && tiles.contains("1/001.p/21") && tiles.contains("2/000.p/1"), "\(tiles.filter { !$0.hasPrefix("0/") })")
            let independent = try await fixture.independentlyVerify(extracted)
            #expect(independent.status == 0 && independent.standardOutput.contains("entries 0…70699 (70700)"), "\(independent.standardOutput)\(independent.standardError)")
            let purge = try await fixture.osmosectl(["journal", "archive", "purge", "2025-01"], config: config)
            #expect(purge.status == 0, "\(purge.standardOutput)\(purge.standardError)")
            try await fixture.sequenceIntake(at: ArchiveFixture.time(ArchiveFixture.march, day: 21))
            let report = try await fixture.verifyJournal()
            #expect(report.passed && report.archivedEntriesReplayed == 70_700, "\(report.failures)")
        }
    }

    @Test("Bad settings are refused with a clear error and nothing written: a missing directory, no recipient, mixed recipients, a relative path")
    func badSettings() async throws {
        try await ArchiveFixture.with("archive_settings") { fixture in
            let missing = try fixture.writeConfiguration(directories: [fixture.directories[0], "\(fixture.scratch)/not-mounted"])
            let refused = try await fixture.osmosectl(["journal", "archive", "write", "2025-01"], config: missing)
            #expect(refused.status == 1 && refused.standardError.contains("not-mounted does not exist (is the cold storage mounted?)"), "\(refused.standardError)")
            #expect(!FileManager.default.fileExists(atPath: "\(fixture.scratch)/not-mounted"), "a missing mount is never created")
            let none = try fixture.writeConfiguration(recipients: [])
            let unencrypted = try await fixture.osmosectl(["journal", "archive", "write", "2025-01"], config: none)
            #expect(unencrypted.status == 1 && unencrypted.standardError.contains("no archive recipient is configured"), "\(unencrypted.standardError)")
            let relative = try fixture.writeConfiguration(directories: ["cold"])
            let invalid = try await fixture.osmosectl(["journal", "archive", "list"], config: relative)
            #expect(invalid.status == 3 && invalid.standardError.contains("archives.directories") && invalid.standardError.contains("must be an absolute path"), "\(invalid.standardError)")
            let mixed = try fixture.writeConfiguration(recipients: [fixture.identity.recipient.encoded, "age1pq1" + String(repeating: "q", count: 1952)])
            let kinds = try await fixture.osmosectl(["journal", "archive", "list"], config: mixed)
            #expect(kinds.status == 3 && kinds.standardError.contains("mixes hybrid post-quantum"), "\(kinds.standardError)")
            for directory in fixture.directories { #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty) }
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM ops.journal_archives").rows[0].int("n") == 0)
        }
    }
}
