import Foundation
import Journal
import Store
import Testing
import TestSupport

/// The security officer's search, a page of 50 entries at a time, newest first.
@Suite("Console journal search")
struct SearchTests {
    @Test("120 entries of one patient: three pages of the newest first, a page past the end shows the last, a page that is not one is refused")
    func pagesOfResults() async throws {
        let patient = UUID()
        try await ConsoleHarness.with("console_search_pages") { harness in
            let (seed, _) = try await Browser(harness).enrol(ConsoleHarness.officer)
            let browser = Browser(harness)
            try await browser.signIn(ConsoleHarness.officer, seed: seed)
            let events = (0..<120).map { index -> AccessEvent in
                var event = AccessEvent(
                    occurredAt: Date().addingTimeInterval(Double(index - 200)), source: "osmose-care", requestID: UUID().uuidString.lowercased(),
                    action: .read, objectType: "episode", result: .success)
                event.objectID = "n\(index)"
                event.patientID = patient
                event.actorUsername = "agent.pages"
                return event
            }
            try await harness.admin.transaction { connection in try connection.record(events) }
            try await harness.sequenceIntake()
            let csrf = try await browser.csrf()
            func objects(_ page: String?) async throws -> (rows: [String], text: String) {
                var form = ["csrf": csrf, "patient": patient.uuidString]
                if let page { form["page"] = page }
                let found = try await browser.post("/journal/recherche", form)
                #expect(found.status == .ok, "page \(page ?? "-")")
                let rows = found.text.matches(of: #/<td>episode (n[0-9]+)</td>/#).map { String($0.output.1) }
                return (rows, found.text)
            }
            let first = try await objects(nil)
            #expect(first.rows == (70..<120).reversed().map { "n\($0)" }, "the 50 newest, newest first")
            #expect(first.text.contains("Entrées trouvées : 120") && first.text.contains("Page 1 sur 3"))
            #expect(first.text.contains(#"name="page" value="2""#) && first.text.contains(#"name="page" value="3""#))
            #expect(!first.text.contains(#"name="page" value="1""#), "no link back from the first page")
            let second = try await objects("2")
            #expect(second.rows == (20..<70).reversed().map { "n\($0)" })
            let third = try await objects("3")
            #expect(third.rows == (0..<20).reversed().map { "n\($0)" }, "the oldest 20 on the last page")
            #expect(third.text.contains("Page 3 sur 3 — entrées 101 à 120") && !third.text.contains(#"name="page" value="4""#))
            #expect(try await objects("7").rows == third.rows, "a page past the end shows the last one")
            // An entry of another patient whose search column was changed to this one: counted
            // among the candidates, not shown, named in an alert with a link to it.
            var other = AccessEvent(source: "osmose-care", requestID: UUID().uuidString.lowercased(), action: .read, objectType: "episode", result: .success)
            other.objectID = "other"
            other.patientID = UUID()
            let single = other
            try await harness.admin.transaction { connection in try connection.record(single) }
            try await harness.sequenceIntake()
            let forged = try await harness.admin.query("SELECT max(seq) AS seq FROM journal.entries WHERE patient_id = $1::uuid", [other.patientID]).rows[0].int64("seq")
            try await harness.admin.execute("SET session_replication_role = replica")
            try await harness.admin.query("UPDATE journal.entries SET patient_id = $1::uuid WHERE seq = $2", [patient, forged])
            try await harness.admin.execute("SET session_replication_role = origin")
            let tampered = try await objects(nil)
            #expect(!tampered.text.contains("<td>episode other</td>"), "the forged candidate is not shown")
            #expect(tampered.text.contains("role=\"alert\"") && tampered.text.contains("href=\"/journal/entree/\(forged)\""))
            for bad in ["0", "11", "deux"] {
                let refused = try await browser.post("/journal/recherche", ["csrf": csrf, "patient": patient.uuidString, "page": bad])
                #expect(refused.status == .badRequest, "page \(bad)")
                #expect(refused.text.contains("entre 1 et 10") && !refused.text.contains("agent.pages"), "page \(bad)")
            }
        }
    }
}
