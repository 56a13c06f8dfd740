import Archive
import Foundation
import Glibc
import Journal
import JournalArchive
import Store
import Testing
import TestSupport

/// Runs `arguments` of osmosectl once to time it, then again and again, each run
/// killed with SIGKILL at a random moment within that time, until `kills` kills have
/// landed mid-run (a run that finished first narrows the window; at most 4 × `kills`
/// rounds). `before` runs ahead of every run, `after` after each kill. The delays
/// come from `random`, seeded (the test prints its seed).
func killDuringRuns(
    _ arguments: [String], kills: Int, random: inout SeededGenerator, before: () async throws -> Void, after: (Int) async throws -> Void
) async throws -> (interrupted: Int, rounds: Int) {
    try await before()
    let started = ContinuousClock.now
    let timed = try await runProgram(JournalArchiveTests.osmosectl, arguments)
    #expect(timed.status == 0, "\(timed.standardOutput)\(timed.standardError)")
    var window = max(10, Int((ContinuousClock.now - started) / .milliseconds(1)))
    var interrupted = 0
    var round = 0
    while interrupted < kills && round < 4 * kills {
        try await before()
        let run = try BackgroundProcess(JournalArchiveTests.osmosectl, arguments)
        try await Task.sleep(for: .milliseconds(Int.random(in: 1...max(1, window * 9 / 10), using: &random)))
        run.signal(SIGKILL)
        if try await run.wait().status == 128 + SIGKILL { interrupted += 1 } else { window = max(5, window * 3 / 4) }
        try await after(round)
        round += 1
    }
    return (interrupted, round)
}

@Suite("Journal months: killed at any moment, a rerun ends in the same state; no month is ever purged without a verified copy")
struct ArchiveCrashTests {
    @Test("SIGKILL during journal archive write and purge", .tags(.crash), .skippedInFastRuns)
    func killedWhileArchivingAndPurging() async throws {
        var random = TestSeed.generator(test: "ArchiveCrashTests.killedWhileArchivingAndPurging")
        // January made large enough that archiving, not starting osmosectl, fills most of a run.
        try await ArchiveFixture.with("archive_crash", januaryBulk: 40_000) { fixture in
            let last = fixture.januaryLast
            let config = try fixture.writeConfiguration()
            let january = ArchiveFixture.january
            let write = ["journal", "archive", "write", "\(january)", "--config", config]
            let purge = ["journal", "archive", "purge", "\(january)", "--config", config]
            let admin = fixture.admin

            /// What must hold after every kill: a recorded archive has every copy intact;
            /// the month is purged only if its record says so, with intact copies.
            func invariants(_ round: Int, _ phase: String) async throws {
                // A killed osmosectl's server process runs on until it notices the lost client, and
                // may still commit the purge it was in: wait for it, or the three reads below see a
                // state before that commit and one after (record and partition present, no entry left).
                try await waitUntil("the killed client's server process to end its transaction", timeout: .seconds(60)) {
                    try await admin.query(
                        """
                        SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                            AND backend_type = 'client backend' AND state <> 'idle') AS settled
                        """
                    ).rows[0].bool("settled")
                }
                let record = try await admin.query(
                    "SELECT archive_sha256, file_name, array_to_string(copies, E'\\n') AS copies, purged_at IS NOT NULL AS purged FROM ops.journal_archives WHERE month = '2025-01-01'"
                ).singleRow()
                let partition = try await admin.query("SELECT to_regclass('journal.entries_2025_01') IS NOT NULL AS present").rows[0].bool("present")
                let stored = try await fixture.storedEntries(0...last)
                guard let record else {
                    #expect(partition && stored == Int(last) + 1, "\(phase) round \(round): no record, so every entry is still stored")
                    return
                }
                let sha = try record.string("archive_sha256")
                for directory in try record.string("copies").split(separator: "\n") {
                    let path = "\(directory)/\(try record.string("file_name"))"
                    #expect((try? FileBlocks.sha256OfFile(path)) == sha, "\(phase) round \(round): the recorded copy \(path) reads back intact")
                }
                #expect(try record.bool("purged") == !partition, "\(phase) round \(round): the partition is gone exactly when the record says purged")
                #expect(stored == (partition ? Int(last) + 1 : 0))
            }

            // Writing: each round starts from a month whose record was forgotten (its files stay, as an interrupted run leaves them).
            var touched = 0
            var filesBefore: [String: String] = [:]
            func files() throws -> [String: String] {
                var found: [String: String] = [:]
                for directory in fixture.directories {
                    for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
                        found["\(directory)/\(name)"] = (try? FileBlocks.sha256OfFile("\(directory)/\(name)")) ?? "unreadable"
                    }
                }
                return found
            }
            let writes = try await killDuringRuns(
                write, kills: 12, random: &random,
                before: {
                    _ = try await admin.query("DELETE FROM ops.journal_archives WHERE month = '2025-01-01'")
                    filesBefore = try files()
                },
                after: { round in
                    try await invariants(round, "write")
                    if try files() != filesBefore { touched += 1 }
                })
            #expect(writes.interrupted == 12, "kills landed mid-write: \(writes.interrupted) in \(writes.rounds) rounds")
            print("ArchiveCrashTests: \(touched) of \(writes.rounds) write rounds were killed after replacing or writing archive files")
            #expect(touched > 0, "some kills landed while archive files were being written")
            let finished = try await runProgram(JournalArchiveTests.osmosectl, write)
            #expect(finished.status == 0, "\(finished.standardError)")
            for directory in fixture.directories {
                let names = try FileManager.default.contentsOfDirectory(atPath: directory)
                #expect(names == ["journal.archive.example-journal-2025-01.tar.zst.age"], "no leftover in \(directory): \(names)")
            }
            try await invariants(-1, "write")
            let archive = "\(fixture.directories[0])/journal.archive.example-journal-2025-01.tar.zst.age"
            let verify = try await runProgram(JournalArchiveTests.osmosectl, ["journal", "verify", "--archive", archive, "--config", config])
            #expect(verify.status == 0, "\(verify.standardOutput)")

            // Purging: each round starts from the month online again (its partition restored from a saved copy of its rows).
            try await admin.execute("CREATE TABLE public.saved_january AS SELECT * FROM journal.entries WHERE seq <= \(last)")
            let restoreMonth = {
                let present = try await admin.query("SELECT to_regclass('journal.entries_2025_01') IS NOT NULL AS present").rows[0].bool("present")
                guard !present else { return }
                _ = try await admin.query("SELECT journal.ensure_month('2025-01-01')")
                try await admin.execute("INSERT INTO journal.entries SELECT * FROM public.saved_january")
                try await admin.execute("UPDATE ops.journal_archives SET purged_at = NULL, purged_entries = NULL WHERE month = '2025-01-01'")
            }
            var purgeEvents = try await Self.purgeEvents(admin)
            let purges = try await killDuringRuns(
                purge, kills: 8, random: &random,
                before: {
                    try await restoreMonth()
                    purgeEvents = try await Self.purgeEvents(admin)
                },
                after: { round in
                    try await invariants(round, "purge")
                    let partition = try await admin.query("SELECT to_regclass('journal.entries_2025_01') IS NOT NULL AS present").rows[0].bool("present")
                    let events = try await Self.purgeEvents(admin)
                    #expect(events == purgeEvents + (partition ? 0 : 1), "purge round \(round): the purge and its journal event commit together")
                })
            #expect(purges.interrupted == 8, "kills landed mid-purge: \(purges.interrupted) in \(purges.rounds) rounds")
            try await restoreMonth()
            let before = try await Self.purgeEvents(admin)
            let done = try await runProgram(JournalArchiveTests.osmosectl, purge)
            #expect(done.status == 0 && done.standardOutput.hasPrefix("purged 2025-01"), "\(done.standardOutput)\(done.standardError)")
            #expect(try await runProgram(JournalArchiveTests.osmosectl, purge).standardOutput.hasPrefix("2025-01 is already purged"))
            try await invariants(-1, "purge")
            #expect(try await Self.purgeEvents(admin) == before + 1)
        }
    }

    static func purgeEvents(_ connection: Connection) async throws -> Int {
        try await connection.query("SELECT count(*) AS n FROM journal.intake WHERE action = 'retention-admin' AND reason LIKE 'purged %'").rows[0].int("n")
    }
}

extension FileBlocks {
    /// The SHA-256 (hex) of a file.
    static func sha256OfFile(_ path: String) throws -> String { try sha256(ofFile: path).sha256 }
}
