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
