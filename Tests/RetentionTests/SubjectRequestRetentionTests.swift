import CareRecords
import Cryptography
import Foundation
import Journal
import Keyring
import Retention
import Store
import SubjectRequests
import Testing
import TestSupport

/// The term of the register of subject requests (`subject_requests.years_after_closure`):
/// planned, approved, applied by osmose_retention, content destroyed, register entry kept.
@Suite("Retention of subject requests against a real database")
struct SubjectRequestRetentionTests {
    static let paris = TimeZone(identifier: "Europe/Paris")!
    static let dpo = SystemActor.operator("dpo@test via osmosectl", role: .dpo)

    /// Opens a request for `patient` with canaries in every place content lives, closes it, then
    /// sets its closing day (as years of use would leave it). Returns its number.
    static func request(
        _ fixture: RetentionFixture, patient: UUID, canary: String, closedOn: Retention.CivilDate?, job: Bool = false
    ) async throws -> Int64 {
        let register = RequestRegister(actor: dpo, timeZone: paris, ring: fixture.ring)
        return try await fixture.admin.transaction { connection in
            let record = try register.open(
                NewRequest(
                    kind: .access, subject: .patientID(patient), capacity: .patient, requesterName: "\(canary)-name", requesterContact: "\(canary)-contact",
                    receivedAt: Date().addingTimeInterval(-3600),
                    identityCheck: IdentityCheck(checkedBy: "dpo.test", checkedAt: Date().addingTimeInterval(-1800), documents: "\(canary)-identity")),
                on: connection)
            _ = try register.addNote(number: record.number, "\(canary)-note", on: connection)
            _ = try register.attach(number: record.number, fileName: "\(canary)-file.pdf", mediaType: "application/pdf", content: Array("\(canary)-document".utf8), on: connection)
            if job {
                try connection.query(
                    """
                    INSERT INTO dsar.jobs (id, operation, requested_by, state, started_at, finished_at, result, output)
                    VALUES ($1, $2::jsonb, 'tests', 'done', now(), now(), $3::jsonb, $4)
                    """,
                    [UUID(), #"{"evidence":{"number":\#(record.number),"recipient":"age1test"}}"#, #"{"evidence":"\#(canary)-summary"}"#, Array("\(canary)-sealed".utf8)])
            }
            guard let closedOn else { return record.number }
            _ = try register.close(number: record.number, outcome: .refused, on: connection)
            try connection.query(
                "UPDATE dsar.requests SET closed_at = ($2::date + time '12:00') AT TIME ZONE 'Europe/Paris' WHERE number = $1", [record.number, closedOn.description])
            return record.number
        }
    }

    /// Every stored value of the schema dsar, as text (bytea as hex and as escaped text), for the canary scan.
    static func dump(_ fixture: RetentionFixture) async throws -> String {
        var text = ""
        for table in ["requests", "deadlines", "notes", "documents", "redactions", "packs", "rectifications", "steps", "jobs"] {
            for row in try await fixture.admin.query("SELECT t::text AS row FROM dsar.\(table) t").rows { text += try row.string("row") + "\n" }
        }
        for row in try await fixture.admin.query("SELECT convert_from(output, 'UTF8') AS o FROM dsar.jobs WHERE output IS NOT NULL").rows {
            text += try row.string("o") + "\n"
        }
        return text
    }

    @Test("Closed requests past their term are destroyed (content gone from every table, register entry, chain and disposal kept); a day before term, open and held ones are kept; the plan equals what was done; an interrupted run finishes")
    func destroyAtTerm() async throws {
        try await RetentionFixture.with("ret_dsar_term") { fixture in
            let years = try #require(fixture.policy.policy.subjectRequests?.yearsAfterClosure)
            let today = fixture.today
            let patients = try await [("Durand", "1950-03-04"), ("Petit", "1960-05-06"), ("Moreau", "1970-07-08"), ("Lefebvre", "1980-09-10")].asyncMap {
                try await fixture.patient($0.0, born: $0.1, registered: "2025-01-01")
            }
            // Due: closed long ago, and closed exactly `years` years ago (the day of term).
            let old = try await Self.request(fixture, patient: patients[0], canary: "CANARY-OLD", closedOn: today.adding(years: -years).adding(days: -40), job: true)
            let onTerm = try await Self.request(fixture, patient: patients[1], canary: "CANARY-TERM", closedOn: today.adding(years: -years))
            // Kept: a day before term, open, held.
            let dayBefore = try await Self.request(fixture, patient: patients[1], canary: "CANARY-BEFORE", closedOn: today.adding(years: -years).adding(days: 1))
            let open = try await Self.request(fixture, patient: patients[2], canary: "CANARY-OPEN", closedOn: nil)
            let held = try await Self.request(fixture, patient: patients[3], canary: "CANARY-HELD", closedOn: today.adding(years: -years).adding(days: -400))
            let hold = try await fixture.admin.transaction {
                try LegalHolds.place(.patient(patients[3]), reason: "Contentieux sur la réponse à la demande", reference: "TA Paris 25/0042", by: Self.dpo, on: $0).id
            }

            let plan = try await fixture.builder().plan(kind: .reviewed, asOf: today, on: fixture.admin)
            let items = plan.items.filter { $0.dataClass == .subjectRequests }
            #expect(items.map(\.key) == ["subject-request/\(old)", "subject-request/\(onTerm)"])
            #expect(items.allSatisfy { $0.action == .destroy && $0.rule.contains("\(years) years after the request was closed (subject_requests.years_after_closure)") })
            #expect(items.last?.dueOn == today && items.last?.basis == ["closed": today.adding(years: -years)])
            #expect(items.first?.basis == ["closed": today.adding(years: -years).adding(days: -40)])
            let heldItems = plan.held.filter { $0.dataClass == .subjectRequests }
            #expect(heldItems.map(\.key) == ["subject-request/\(held)"] && heldItems.first?.heldBy == [hold])
            // Next year's view lists the one a day before term too.
            let preview = try await fixture.builder().plan(kind: .preview, asOf: today.adding(days: 1), on: fixture.admin)
            #expect(preview.items.filter { $0.dataClass == .subjectRequests }.map(\.key).contains("subject-request/\(dayBefore)"))

            let keptBefore = try await fixture.admin.query(
                "SELECT r::text AS row FROM dsar.requests r WHERE number = ANY($1::bigint[]) ORDER BY number", ["{\(dayBefore),\(open),\(held)}"]
            ).rows.map { try $0.string("row") }
            let stored = try await fixture.admin.transaction { try PlanStore.save(plan, computedBy: Self.dpo.name, on: $0) }
            _ = try await fixture.admin.transaction { try PlanStore.approve(stored.id, sha256: stored.sha256, approverName: "Jeanne Martin", by: Self.dpo, on: $0) }

            // The stored ciphertexts of the due requests, to look for after.
            let ciphertexts = try await fixture.admin.query(
                """
                SELECT encode(v, 'hex') AS hex FROM dsar.requests r,
                    LATERAL (SELECT requester_name UNION ALL SELECT requester_contact UNION ALL SELECT identity_check
                             UNION ALL SELECT body FROM dsar.notes WHERE request_id = r.id
                             UNION ALL SELECT content FROM dsar.documents WHERE request_id = r.id
                             UNION ALL SELECT file_name FROM dsar.documents WHERE request_id = r.id) AS x (v)
                WHERE r.number = ANY($1::bigint[]) AND v IS NOT NULL
                """, ["{\(old),\(onTerm)}"]
            ).rows.map { try $0.string("hex") }
            #expect(ciphertexts.count == 12)

            let oldSteps = try await fixture.admin.query(
                "SELECT count(*) AS n FROM dsar.steps s JOIN dsar.requests r ON r.id = s.request_id WHERE r.number = $1", [old]
            ).rows[0].int("n")
            #expect(oldSteps >= 4)

            // A dry run changes nothing.
            let dumpBefore = try await Self.dump(fixture)
            let dry = try await fixture.asRetention { try await fixture.applier().apply(plan: stored.id, dryRun: true, on: $0) }
            #expect(try await Self.dump(fixture) == dumpBefore)
            #expect(dumpBefore.contains("CANARY-OLD-sealed") && dumpBefore.contains("CANARY-OLD-summary"), "the scan sees clear values")

            // Interrupted after the first request (as SIGTERM would), then resumed: the run finishes the same plan.
            let calls = BatchCounter()
            let first = try await fixture.asRetention { connection in
                try await fixture.applier().apply(plan: stored.id, stop: { calls.next() > 1 + plan.items.firstIndex { $0.dataClass == .subjectRequests }! }, on: connection)
            }
            #expect(first.interrupted)
            let report = try await fixture.asRetention { try await fixture.applier().apply(plan: stored.id, on: $0) }
            #expect(!report.interrupted && report.certificateSHA256 != nil)
            let outcomes = report.outcomes.filter { $0.key.hasPrefix("subject-request/") }
            #expect(outcomes.map(\.key) == items.map(\.key) && outcomes.allSatisfy { $0.outcome == .done }, "\(outcomes)")
            let dryOutcomes = dry.outcomes.filter { $0.key.hasPrefix("subject-request/") }
            #expect(dryOutcomes.map(\.valuesRemoved) == outcomes.map(\.valuesRemoved) && dryOutcomes.map(\.removedSHA256) == outcomes.map(\.removedSHA256))
            // name, contact, identity check, note, file name, document content, job output and summary, patient link, each step's body.
            #expect(outcomes.first?.valuesRemoved == Int64(9 + oldSteps))

            // Content gone from every table, for the two disposed requests; nothing left in clear either.
            let ids = "{\(old),\(onTerm)}"
            let left = try await fixture.admin.query(
                """
                SELECT (SELECT count(*) FROM dsar.notes n JOIN dsar.requests r ON r.id = n.request_id WHERE r.number = ANY($1::bigint[]))
                     + (SELECT count(*) FROM dsar.documents d JOIN dsar.requests r ON r.id = d.request_id WHERE r.number = ANY($1::bigint[]))
                     + (SELECT count(*) FROM dsar.packs p JOIN dsar.requests r ON r.id = p.request_id WHERE r.number = ANY($1::bigint[]))
                     + (SELECT count(*) FROM dsar.redactions x JOIN dsar.requests r ON r.id = x.request_id WHERE r.number = ANY($1::bigint[]))
                     + (SELECT count(*) FROM dsar.rectifications x JOIN dsar.requests r ON r.id = x.request_id WHERE r.number = ANY($1::bigint[]))
                     + (SELECT count(*) FROM dsar.jobs WHERE operation::text LIKE '%"number": \(old)%')
                     + (SELECT count(*) FROM dsar.requests WHERE number = ANY($1::bigint[])
                          AND num_nonnulls(requester_name, requester_contact, identity_check, identity_checked_at, identity_checked_by, patient_id) > 0) AS n
                """, [ids]
            ).rows[0].int("n")
            #expect(left == 0)
            let dumpAfter = try await Self.dump(fixture)
            #expect(!dumpAfter.contains("CANARY-OLD") && !dumpAfter.contains("CANARY-TERM"))
            #expect(ciphertexts.allSatisfy { dumpBefore.contains($0) }, "the scan sees stored ciphertexts")
            #expect(ciphertexts.allSatisfy { !dumpAfter.contains($0) }, "no removed ciphertext is left in the schema dsar")
            // The evidence steps kept the digest of the requester's name (guessable): erased with their bodies.
            let nameDigest = "sha256:" + SHA256.hash(Array("CANARY-OLD-name".utf8)).map { String(format: "%02x", $0) }.joined()
            #expect(dumpBefore.contains(nameDigest) && !dumpAfter.contains(nameDigest))
            let steps = try await fixture.admin.query(
                """
                SELECT count(*) FILTER (WHERE s.body IS NULL) AS erased, count(*) FILTER (WHERE r.number = ANY($1::bigint[])) AS disposed
                FROM dsar.steps s JOIN dsar.requests r ON r.id = s.request_id
                """, [ids]
            ).rows[0]
            #expect(try steps.int("erased") == steps.int("disposed") && steps.int("erased") >= 6)
            // Erased bodies are the only change a step may get, and no step may go.
            await #expect(throws: (any Error).self) {
                try await fixture.admin.query("UPDATE dsar.steps s SET kind = 'other' FROM dsar.requests r WHERE r.id = s.request_id AND r.number = $1", [old])
            }
            await #expect(throws: (any Error).self) {
                try await fixture.admin.query("UPDATE dsar.steps s SET body = NULL FROM dsar.requests r WHERE r.id = s.request_id AND r.number = $1", [open])
            }
            await #expect(throws: (any Error).self) {
                try await fixture.admin.query("DELETE FROM dsar.steps s USING dsar.requests r WHERE r.id = s.request_id AND r.number = $1", [old])
            }
            // What an auditor needs stays: number, kind, dates, outcome, the disposal and its plan.
            let kept = try await fixture.admin.query(
                """
                SELECT number, kind, status, outcome, received_on IS NOT NULL AND opened_at IS NOT NULL AND closed_at IS NOT NULL AS dated, disposed_at IS NOT NULL AS disposed,
                       disposal_plan_id, disposal_plan_sha256, disposal_approved_by FROM dsar.requests WHERE number = ANY($1::bigint[]) ORDER BY number
                """, [ids]
            ).rows
            #expect(kept.count == 2)
            for row in kept {
                #expect(try row.string("kind") == "access" && row.string("outcome") == "refused" && row.bool("dated") && row.bool("disposed"))
                #expect(try row.int64("disposal_plan_id") == stored.id && row.string("disposal_plan_sha256") == stored.sha256 && row.string("disposal_approved_by") == "Jeanne Martin")
            }
            // The evidence chain still verifies; the register still reads the entry.
            let register = RequestRegister(actor: Self.dpo, timeZone: Self.paris, ring: fixture.ring)
            let verified = try await fixture.admin.perform { try EvidenceFiles(register: register).verify(number: old, on: $0) }
            #expect(verified.problems.isEmpty && !verified.steps.isEmpty && verified.steps.allSatisfy(\.isErased), "\(verified.problems)")
            // The register says so: the record, and its line in the listing (the others are not marked).
            let shown = try await fixture.admin.perform { try register.request(number: old, on: $0) }
            #expect(shown.disposal?.planID == stored.id && shown.disposal?.planSHA256 == stored.sha256 && shown.disposal?.approvedBy == "Jeanne Martin")
            #expect(shown.requesterName == nil && shown.outcome == .refused)
            let listed = try await fixture.admin.perform { try register.list(openOnly: false, dueWithin: nil, on: $0) }
            #expect(Set(listed.filter(\.disposed).map(\.number)) == Set([old, onTerm]))
            let page = try await fixture.admin.perform { try register.page(.init(status: .all), offset: 0, limit: 50, warnDays: 5, on: $0) }
            #expect(Set(page.rows.filter(\.disposed).map(\.number)) == Set([old, onTerm]))
            // The others are untouched, their content still readable.
            let keptAfter = try await fixture.admin.query(
                "SELECT r::text AS row FROM dsar.requests r WHERE number = ANY($1::bigint[]) ORDER BY number", ["{\(dayBefore),\(open),\(held)}"]
            ).rows.map { try $0.string("row") }
            #expect(keptAfter == keptBefore)
            for (number, canary) in [(dayBefore, "CANARY-BEFORE"), (open, "CANARY-OPEN"), (held, "CANARY-HELD")] {
                let notes = try await fixture.admin.perform { try register.notes(number: number, on: $0) }
                #expect(notes.map(\.text) == ["\(canary)-note"])
            }
            // Journaled as retention-admin by the system; in the certificate with its digest.
            let events = try await fixture.admin.query(
                "SELECT object_id, actor_role, reason FROM journal.intake WHERE action = 'retention-admin' AND object_type = 'subject-request' ORDER BY id"
            ).rows
            #expect(try events.map { try $0.string("object_id") } == [String(old), String(onTerm)])
            #expect(try events.allSatisfy { try $0.string("actor_role") == "system" && $0.string("reason").contains(stored.sha256) })
            let certificate = try await fixture.admin.perform { try Certificates.list(on: $0) }.first
            let certified = certificate?.certificate.items.filter { $0.key.hasPrefix("subject-request/") }
            #expect(certified?.map(\.removedSHA256) == outcomes.map(\.removedSHA256))
            // A disposed request cannot be changed any more, even by the schema owner.
            await #expect(throws: (any Error).self) {
                try await fixture.admin.query("UPDATE dsar.requests SET requester_contact = NULL, late_acknowledged = true WHERE number = $1", [old])
            }
        }
    }
}
