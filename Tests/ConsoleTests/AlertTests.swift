import CareRecords
import Foundation
import Journal
import Store
import Testing
import TestSupport

/// The security officer's alerts, from entries sequenced into a real journal.
@Suite("Console alerts")
struct AlertTests {
    @Test("a spike of denied access names who was denied most in that hour; a quieter hour is listed, not alerted; a failed verification links its entry")
    func deniedSpikeAndFailedVerification() async throws {
        try await ConsoleHarness.with("console_alerts") { harness in
            let (seed, _) = try await Browser(harness).enrol(ConsoleHarness.officer)
            let browser = Browser(harness)
            try await browser.signIn(ConsoleHarness.officer, seed: seed)
            // Two hours ago: 24 refusals for one agent and 3 for another (a spike from 20);
            // five hours ago: 5 for a third (listed, below the threshold).
            let hour: TimeInterval = 3_600
            let spikeHour = (Date().timeIntervalSince1970 / hour).rounded(.down) * hour - 2 * hour
            let quietHour = spikeHour - 3 * hour
            var events: [AccessEvent] = []
            for (username, count, start) in [("agent.intrus", 24, spikeHour), ("agent.curieux", 3, spikeHour), ("agent.autre", 5, quietHour)] {
                for index in 0..<count {
                    var event = AccessEvent(
                        occurredAt: Date(timeIntervalSince1970: start + 60 + Double(index)), source: "osmose-care", requestID: UUID().uuidString.lowercased(),
                        action: .read, objectType: "patient", result: .denied)
                    event.actorUsername = username
                    event.actorRole = "agent"
                    event.reason = "care.forbidden"
                    events.append(event)
                }
            }
            var failed = AccessEvent(
                source: "osmose-console", requestID: UUID().uuidString.lowercased(), action: .journalAdmin, objectType: "journal-verify", result: .error)
            failed.actorUsername = ConsoleHarness.officer
            failed.reason = "FAILED: first bad sequence 3; journal.leaf_hash_mismatch"
            events.append(failed)
            let batch = events
            try await harness.admin.transaction { connection in try connection.record(batch) }
            try await harness.sequenceIntake()

            let page = try await browser.get("/journal/alertes")
            #expect(page.status == .ok)
            #expect(page.text.contains("Pic d"), "a spike is alerted")
            #expect(page.text.contains(": 27 — agent.intrus (24), agent.curieux (3)"), "the spike's hour names its own refusals, most first")
            #expect(!page.text.contains("agent.autre ("), "an agent denied in another hour is not named in the spike")
            #expect(page.text.contains("<td>5</td>"), "the quieter hour is listed with its count")
            #expect(page.text.contains("first bad sequence 3; journal.leaf_hash_mismatch"))
            let failedSequence = try #require(
                try await harness.admin.query("SELECT max(seq) AS seq FROM journal.entries WHERE result = 'error'").rows.first?.int64("seq"))
            #expect(page.text.contains("href=\"/journal/entree/\(failedSequence)\""), "the failed verification links its entry")
            #expect(page.text.contains("Accès refusés sur 24 heures : 32"))
        }
    }
}

/// Openings of restricted records (GDPR art. 18(2)) among the security officer's alerts.
@Suite("Console alerts: openings of restricted records")
struct RestrictedOpeningAlertTests {
    @Test("an opening of a restricted record in the last 30 days is alerted with who, when, the patient, the ground and its journal entry; an older one is not")
    func restrictedOpenings() async throws {
        try await ConsoleHarness.with("console_alerts_overrides", keyring: true) { harness in
            let patient = try await DPOPageTests.patient(harness)
            let dpo = try await DPOPageTests.signedIn(harness, ConsoleHarness.dpo)
            var form = DPOPageTests.openForm(patient: patient, daysAgo: 1, csrf: try await dpo.csrf())
            form["kind"] = "restriction"
            #expect(try await dpo.post("/dpo/demandes/nouvelle", form).status == .seeOther)
            let request = try await harness.admin.query("SELECT id FROM dsar.requests WHERE number = 1").rows[0].uuid("id")
            let user = try await harness.admin.query("SELECT id FROM care.users WHERE username = 'camille.sau'").rows[0].uuid("id")
            let team = try await harness.admin.query("SELECT id FROM care.teams WHERE code = 'sau'").rows[0].uuid("id")
            let principal = Principal(userID: user, username: "camille.sau", role: .agent, teamID: team, teamCode: "sau")
            try await harness.admin.transaction { connection in
                let restriction = try PatientRestrictions.restrict(patient, request: request, by: "tests", on: connection)
                // Journaled by osmose-care (the event below); one opening not sequenced yet; one 40 days old.
                try PatientRestrictions.recordOverride(restriction, by: principal, ground: .legalClaims, careRequestID: "care-req-journaled", endpoint: "patient read", on: connection)
                try PatientRestrictions.recordOverride(restriction, by: principal, ground: .consent, careRequestID: "care-req-pending", endpoint: "episode list", on: connection)
                try PatientRestrictions.recordOverride(restriction, by: principal, ground: .publicInterest, careRequestID: "care-req-old", endpoint: "patient read", on: connection)
                try connection.query("UPDATE care.restriction_overrides SET occurred_at = now() - interval '40 days' WHERE care_request_id = 'care-req-old'")
            }
            var event = AccessEvent(source: "osmose-care", requestID: "care-req-journaled", action: .read, objectType: "patient", result: .success)
            event.actorUserID = user
            event.actorUsername = "camille.sau"
            event.actorRole = "agent"
            event.actorTeam = "sau"
            event.purpose = .care
            event.objectID = patient.uuidString.lowercased()
            event.patientID = patient
            event.reason = "restriction-override:legal-claims"
            // Another event of the same patient and moment, of another request: not the one linked.
            var other = event
            other.requestID = "care-req-unrelated"
            other.reason = nil
            let batch = [other, event]
            try await harness.admin.transaction { connection in try connection.record(batch) }
            try await harness.sequenceIntake()
            // Sequenced in order: the override's event after the other one.
            let sequence = try await harness.admin.query("SELECT max(seq) AS seq FROM journal.entries WHERE patient_id = $1", [patient]).rows[0].int64("seq")

            let (seed, _) = try await Browser(harness).enrol(ConsoleHarness.officer)
            let officer = Browser(harness)
            try await officer.signIn(ConsoleHarness.officer, seed: seed)
            let page = try await officer.get("/journal/alertes")
            #expect(page.status == .ok)
            let lines = page.text.allCaptures(#"<li class="alert medium"><strong>Ouverture d&#39;un dossier à traitement limité[^<]*</strong>(.*?)</li>"#)
            #expect(lines.count == 2, "the two openings of the last 30 days, not the older one")
            let journaled = try #require(lines.first { $0.contains("défense de droits en justice") })
            #expect(journaled.contains("camille.sau (agent, sau)") && journaled.contains("patient \(patient.uuidString.lowercased())"))
            #expect(journaled.contains("patient read") && journaled.contains(#"href="/journal/entree/\#(sequence)""#), "who, which patient, the ground and the entry")
            let pending = try #require(lines.first { $0.contains("consentement de la personne") })
            #expect(pending.contains("pas encore au journal") && !pending.contains("href="))
            #expect(!page.text.contains("intérêt public"), "the opening of 40 days ago is not alerted")
            #expect(!page.text.contains("Lefèvre") && !page.text.contains("Anaïs"), "the patient by id only")
            // The DPO is refused the security officer's alerts.
            #expect(try await dpo.get("/journal/alertes").status == .forbidden)
        }
    }
}
