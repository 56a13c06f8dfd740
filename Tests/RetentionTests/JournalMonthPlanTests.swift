import Age
import Cryptography
import Foundation
import Journal
import JournalArchive
import Retention
import Store
import Testing
import TestSupport

@Suite("Journal months and cold archives in retention plans, against a real database and real files")
struct JournalMonthPlanTests {
    static let dpo = SystemActor.operator("dpo@test via osmosectl", role: .dpo)

    static func sha256(ofFile path: String) throws -> String {
        SHA256.hash(Array(try Data(contentsOf: URL(fileURLWithPath: path)))).map { String(format: "%02x", $0) }.joined()
    }

    func firstDay(_ month: JournalMonth) -> CivilDate { try! CivilDate(year: month.year, month: month.month, day: 1) }

    @Test("A due month is planned with its rule and dates, approved, archived to every directory, verified, purged; what was done is the plan, item by item")
    func dueMonthThroughPlanApproveApply() async throws {
        try await JournalMonthsFixture.with("ret_months_flow") { fixture in
            let (due, notDue) = (fixture.due, fixture.notDue)
            let today = fixture.base.today
            let plan = try await fixture.builder().plan(kind: .reviewed, asOf: today, on: fixture.base.admin)
            #expect(plan.items.map(\.key) == ["journal-month/\(due)"], "\(plan.items.map(\.key))")
            let item = try #require(plan.items.first)
            #expect(item.action == .archiveThenPurge && item.dataClass == .journal && item.heldBy == nil)
            #expect(item.dueOn == firstDay(due).adding(months: 13), "12 months online after the month ends")
            #expect(item.basis == ["month_end": firstDay(due).adding(months: 1).adding(days: -1)])
            #expect(item.rule.contains("12 months online") && item.rule.contains("journal.online_months"))
            #expect(plan.held.isEmpty)
            // The day the next month is due, a preview lists both; never the journal's current month.
            let preview = try await fixture.builder().plan(kind: .preview, asOf: firstDay(notDue).adding(months: 13), on: fixture.base.admin)
            #expect(preview.items.map(\.key) == ["journal-month/\(due)", "journal-month/\(notDue)"])
            let dayBefore = try await fixture.builder().plan(kind: .preview, asOf: firstDay(notDue).adding(months: 13).adding(days: -1), on: fixture.base.admin)
            #expect(dayBefore.items.map(\.key) == ["journal-month/\(due)"], "kept through the last day of its 12th month")

            let stored = try await fixture.base.admin.transaction { try PlanStore.save(plan, computedBy: Self.dpo.name, on: $0) }
            let before = try #require(try await fixture.status(due))
            #expect(before.state == .online)
            let checkpointBefore = try await fixture.base.admin.perform { try JournalDatabase.latestCheckpoint(on: $0)! }
            _ = try await fixture.base.admin.transaction { try PlanStore.approve(stored.id, sha256: stored.sha256, approverName: "Jeanne Martin", by: Self.dpo, on: $0) }

            // A dry run writes nothing and removes nothing.
            let dry = try await fixture.base.asRetention { try await fixture.applier().apply(plan: stored.id, dryRun: true, on: $0) }
            #expect(dry.outcomes.map(\.key) == plan.items.map(\.key) && dry.outcomes.allSatisfy { $0.outcome == .done }, "\(dry.outcomes)")
            #expect(dry.outcomes.first?.detail.hasPrefix("would archive entries \(before.firstSequence!)…\(before.lastSequence!)") == true, "\(dry.outcomes)")
            #expect(fixture.archiveFiles().isEmpty)
            #expect(try await fixture.status(due)?.state == .online)

            let report = try await fixture.base.asRetention { try await fixture.applier().apply(plan: stored.id, on: $0) }
            #expect(report.outcomes.map(\.key) == plan.items.map(\.key))
            #expect(report.outcomes.allSatisfy { $0.outcome == .done }, "\(report.outcomes)")
            let after = try #require(try await fixture.status(due))
            let record = try #require(after.archive)
            #expect(after.state == .purged && record.purgedEntries == before.entryCount)
            #expect(record.copies == fixture.directories)
            #expect(try await fixture.base.admin.query("SELECT to_regclass('journal.\(due.partitionName)') IS NULL AS gone").rows[0].bool("gone"))
            #expect((try await fixture.status(notDue))?.state == .online, "the month not yet due is untouched")
            let outcome = try #require(report.outcomes.first)
            #expect(outcome.removedSHA256 == record.archiveSHA256 && outcome.valuesRemoved == Int64(before.entryCount))
            #expect(outcome.detail.contains(record.fileName) && outcome.detail.contains("2 copies read back and verified"))
            for copy in record.copyPaths { #expect(try Self.sha256(ofFile: copy) == record.archiveSHA256) }
            #expect(dry.outcomes.map(\.valuesRemoved) == report.outcomes.map(\.valuesRemoved), "the dry run counted the entries the run purged")

            // The archive verifies alone, with the identity kept offline.
            let alone = try JournalArchiveVerifier(keys: [fixture.signer.verifierKey]).verify(file: record.copyPaths[1], identities: [fixture.identity])
            #expect(alone.passed && alone.entriesChecked == before.entryCount, "\(alone.problems)")

            // The certificate records the archive's digest and the entries purged.
            let certificate = try #require(try await fixture.base.admin.perform { try Certificates.list(on: $0) }.first)
            #expect(certificate.sha256 == report.certificateSHA256 && certificate.certificate.approval.approver == "Jeanne Martin")
            #expect(certificate.certificate.items.map(\.key) == plan.items.map(\.key))
            #expect(certificate.certificate.items.first?.removedSHA256 == record.archiveSHA256)
            #expect(certificate.certificate.items.first?.valuesRemoved == Int64(before.entryCount))

            // Journaled: the archive, the purge (by osmose-retentiond) and the certificate.
            let events = try await fixture.base.admin.query(
                "SELECT object_type, object_id, actor_role, reason FROM journal.intake WHERE action = 'retention-admin' ORDER BY id"
            ).rows.map { try "\($0.string("actor_role")) \($0.string("object_type")) \($0.optionalString("object_id") ?? "-") \($0.optionalString("reason") ?? "")" }
            #expect(events.filter { $0.hasPrefix("system journal-month \(due) archived entries") }.count == 1, "\(events)")
            #expect(events.filter { $0.hasPrefix("system journal-month \(due) purged entries") }.count == 1, "\(events)")
            #expect(events.contains { $0.hasPrefix("system retention-certificate") })

            // Rerunning changes nothing: the run is finished.
            let again = try await fixture.base.asRetention { try await fixture.applier().apply(plan: stored.id, on: $0) }
            #expect(again.outcomes == report.outcomes && again.certificateSHA256 == nil)

            // The journal verifies after the purge, and a consistency proof from a checkpoint
            // before it to one after it still checks.
            try await fixture.sequenceIntake(at: JournalMonthsFixture.time(fixture.last, day: 25))
            try await fixture.checkpoint(at: JournalMonthsFixture.time(fixture.last, day: 25, hour: 13))
            let verification = try await fixture.verifyJournal()
            #expect(verification.passed, "\(verification.failures)")
            #expect(verification.archivedEntriesReplayed == before.entryCount && verification.archivedRanges.count == 1)
            let latest = try await fixture.base.admin.perform { try JournalDatabase.latestCheckpoint(on: $0)! }
            let body = try await fixture.base.admin.transaction(isolation: .repeatableRead) {
                try JournalProofs.consistency(from: checkpointBefore.id, to: latest.id, on: $0)
            }
            let hashes = body.split(separator: "\n\n")[0].split(separator: "\n").dropFirst().map { Array(Data(base64Encoded: String($0))!) }
            #expect(latest.treeSize > checkpointBefore.treeSize)
            #expect(
                MerkleTree.verifyConsistency(
                    oldSize: Int(checkpointBefore.treeSize), newSize: Int(latest.treeSize), oldRoot: checkpointBefore.rootHash, newRoot: latest.rootHash, proof: hashes))

        }
    }

    @Test("The daemon's automatic plan holds only the months due (no archive destruction) and is applied without approval; its certificate says so")
    func automaticPlan() async throws {
        try await JournalMonthsFixture.with("ret_months_auto") { fixture in
            let plan = try await fixture.builder().plan(kind: .automatic, asOf: fixture.base.today, on: fixture.base.admin)
            #expect(plan.items.map(\.key) == ["journal-month/\(fixture.due)"])
            let stored = try await fixture.base.asRetention { connection in
                try await connection.transaction { try PlanStore.save(plan, computedBy: SystemActor.daemon(.retentiond).name, on: $0) }
            }
            let report = try await fixture.base.asRetention { try await fixture.applier().apply(plan: stored.id, on: $0) }
            #expect(report.outcomes.map(\.outcome) == [.done], "\(report.outcomes)")
            #expect((try await fixture.status(fixture.due))?.state == .purged)
            let certificate = try #require(try await fixture.base.admin.perform { try Certificates.list(on: $0) }.first)
            #expect(certificate.certificate.approval.approver == "automatic" && certificate.certificate.approval.recordedBy.contains("journal.automatic"))
            // Once purged, the month's archive enters plans only at the end of its own term, and never the automatic plan.
            let later = try await fixture.builder().plan(kind: .automatic, asOf: firstDay(fixture.due).adding(months: 1).adding(years: 6), on: fixture.base.admin)
            #expect(!later.items.contains { $0.dataClass == .coldArchives })
        }
    }

    @Test("A legal hold on a journal period keeps the months it overlaps, the plan names it, and an approved plan is skipped when a hold was placed since")
    func holdKeepsMonth() async throws {
        try await JournalMonthsFixture.with("ret_months_hold") { fixture in
            let due = fixture.due
            let plan = try await fixture.builder().plan(kind: .reviewed, asOf: fixture.base.today, on: fixture.base.admin)
            let stored = try await fixture.base.admin.transaction { try PlanStore.save(plan, computedBy: Self.dpo.name, on: $0) }
            _ = try await fixture.base.admin.transaction { try PlanStore.approve(stored.id, sha256: stored.sha256, approverName: "Jeanne Martin", by: Self.dpo, on: $0) }

            // A period ending on the month's first day is enough to keep it.
            let hold = try await fixture.base.admin.transaction { connection in
                try LegalHolds.place(
                    .journalPeriod(from: firstDay(due).adding(days: -10), through: firstDay(due)), reason: "Enquête sur des accès au dossier",
                    reference: "RSSI-2026-42", by: Self.dpo, on: connection)
            }
            let heldPlan = try await fixture.builder().plan(kind: .reviewed, asOf: fixture.base.today, on: fixture.base.admin)
            #expect(heldPlan.items.isEmpty)
            #expect(heldPlan.held.map(\.key) == ["journal-month/\(due)"] && heldPlan.held.first?.heldBy == [hold.id])

            let report = try await fixture.base.asRetention { try await fixture.applier().apply(plan: stored.id, on: $0) }
            #expect(report.outcomes.map(\.outcome) == [.skipped] && report.outcomes.first?.detail == "kept by legal hold \(hold.id)", "\(report.outcomes)")
            #expect((try await fixture.status(due))?.state == .online && fixture.archiveFiles().isEmpty)

            // A hold on another period keeps nothing; released, the month is due again.
            _ = try await fixture.base.admin.transaction { connection in
                try LegalHolds.release(hold.id, reason: "Enquête close sans suite", by: Self.dpo, on: connection)
            }
            _ = try await fixture.base.admin.transaction { connection in
                try LegalHolds.place(
                    .journalPeriod(from: firstDay(due).adding(months: 1), through: firstDay(due).adding(months: 1).adding(days: 3)),
                    reason: "Enquête sur le mois suivant seulement", reference: "RSSI-2026-43", by: Self.dpo, on: connection)
            }
            let released = try await fixture.builder().plan(kind: .reviewed, asOf: fixture.base.today, on: fixture.base.admin)
            #expect(released.items.map(\.key) == ["journal-month/\(due)"] && released.held.isEmpty)
        }
    }

    @Test("An archive is destroyed once archive_years have passed after its month (seen with a preview, applied on that day)")
    func destroyAfterArchiveYears() async throws {
        try await JournalMonthsFixture.with("ret_months_destroy") { fixture in
            let due = fixture.due
            let automatic = try await fixture.builder().plan(kind: .automatic, asOf: fixture.base.today, on: fixture.base.admin)
            let first = try await fixture.base.admin.transaction { try PlanStore.save(automatic, computedBy: "osmose-retentiond", on: $0) }
            _ = try await fixture.base.asRetention { try await fixture.applier().apply(plan: first.id, on: $0) }
            let record = try #require(try await fixture.status(due)?.archive)
            #expect(fixture.archiveFiles() == record.copyPaths.sorted())

            let term = firstDay(due).adding(months: 1).adding(years: 6)
            #expect(Int64(term.startUTC.timeIntervalSince1970 * 1_000_000) == due.end(plusYears: 6), "the plan's term is the library's")
            let dayBefore = try await fixture.builder().plan(kind: .preview, asOf: term.adding(days: -1), on: fixture.base.admin)
            #expect(!dayBefore.items.contains { $0.dataClass == .coldArchives })
            let preview = try await fixture.builder().plan(kind: .preview, asOf: term, on: fixture.base.admin)
            let item = try #require(preview.items.first { $0.key == "cold-archive/\(due)" })
            #expect(item.action == .destroy && item.dueOn == term && item.rule.contains("cold_archives.archive_years"))
            #expect(item.basis["purged"] == CivilDate(utc: Date()))

            // Applied on that day (the DPO approves it then).
            let then = term.startUTC.addingTimeInterval(3600)
            let plan = try await fixture.builder().plan(kind: .reviewed, asOf: term, now: then, on: fixture.base.admin)
            let stored = try await fixture.base.admin.transaction { try PlanStore.save(plan, computedBy: Self.dpo.name, on: $0) }
            _ = try await fixture.base.admin.transaction { try PlanStore.approve(stored.id, sha256: stored.sha256, approverName: "Jeanne Martin", by: Self.dpo, on: $0) }
            let report = try await fixture.base.asRetention { try await fixture.applier().apply(plan: stored.id, now: { then }, on: $0) }
            let outcome = try #require(report.outcomes.first { $0.key == "cold-archive/\(due)" })
            #expect(outcome.outcome == .done && outcome.removedSHA256 == record.archiveSHA256 && outcome.valuesRemoved == 2, "\(outcome)")
            #expect(record.copyPaths.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
            #expect(try await fixture.status(due)?.state == .destroyed)
        }
    }

    @Test("A hold on the period keeps an archive past its term")
    func holdKeepsArchive() async throws {
        try await JournalMonthsFixture.with("ret_months_hold_archive") { fixture in
            let due = fixture.due
            let automatic = try await fixture.builder().plan(kind: .automatic, asOf: fixture.base.today, on: fixture.base.admin)
            let first = try await fixture.base.admin.transaction { try PlanStore.save(automatic, computedBy: "osmose-retentiond", on: $0) }
            _ = try await fixture.base.asRetention { try await fixture.applier().apply(plan: first.id, on: $0) }
            let hold = try await fixture.base.admin.transaction { connection in
                try LegalHolds.place(
                    .journalPeriod(from: firstDay(due).adding(days: 14), through: firstDay(due).adding(days: 14)), reason: "Plainte d'un patient, accès contesté",
                    reference: "TJ Paris RG 26/07777", by: Self.dpo, on: connection)
            }
            let preview = try await fixture.builder().plan(kind: .preview, asOf: firstDay(due).adding(months: 1).adding(years: 7), on: fixture.base.admin)
            #expect(!preview.items.contains { $0.key == "cold-archive/\(due)" })
            #expect(preview.held.first { $0.key == "cold-archive/\(due)" }?.heldBy == [hold.id])
        }
    }

    @Test("A missing archive directory or no recipient is refused with a clear error before anything is done: no run, no file, the month online")
    func refusals() async throws {
        try await JournalMonthsFixture.with("ret_months_refusals") { fixture in
            let plan = try await fixture.builder().plan(kind: .reviewed, asOf: fixture.base.today, on: fixture.base.admin)
            let stored = try await fixture.base.admin.transaction { try PlanStore.save(plan, computedBy: Self.dpo.name, on: $0) }
            _ = try await fixture.base.admin.transaction { try PlanStore.approve(stored.id, sha256: stored.sha256, approverName: "Jeanne Martin", by: Self.dpo, on: $0) }
            let unmounted = "\(fixture.scratch)/cold-unmounted"
            let cases: [(JournalMonthArchives, String)] = [
                (try fixture.journal(directories: [fixture.directories[0], unmounted]), "\(unmounted) does not exist (is the cold storage mounted?)"),
                (try fixture.journal(recipients: []), "no archive recipient is configured (archives.recipients)"),
                (try fixture.journal(directories: []), "no archive directory is configured (archives.directories)"),
            ]
            for (journal, message) in cases {
                for dryRun in [true, false] {
                    let error = await #expect(throws: RetentionError.self) {
                        try await fixture.base.asRetention { try await fixture.applier(journal).apply(plan: stored.id, dryRun: dryRun, on: $0) }
                    }
                    #expect(error?.code == .archiveUnavailable && error?.message.contains(message) == true, "\(String(describing: error))")
                    #expect(error?.message.contains("nothing was changed") == true)
                }
            }
            #expect(!FileManager.default.fileExists(atPath: unmounted), "a missing mount is never created")
            #expect(fixture.archiveFiles().isEmpty)
            #expect(try await fixture.status(fixture.due)?.state == .online)
            #expect(try await fixture.base.admin.query("SELECT count(*) AS n FROM ops.retention_runs").rows[0].int("n") == 0)
            #expect(throws: RetentionError.self) { try fixture.journal(recipients: ["age1notarecipient"]) }
            // The same plan, with the directories mounted, goes through.
            let report = try await fixture.base.asRetention { try await fixture.applier().apply(plan: stored.id, on: $0) }
            #expect(report.outcomes.map(\.outcome) == [.done])
        }
    }
}
