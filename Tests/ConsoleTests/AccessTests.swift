import Foundation
import HTTPTypes
import Journal
import Store
import Testing
import TestSupport

/// Role separation, the journaling of every page view, fail closed and the canary.
@Suite("Console access")
struct AccessTests {
    static let pages: [(path: String, role: String)] = [
        ("/dpo/politiques", "dpo"), ("/journal", "security-officer"), ("/journal/recherche", "security-officer"),
        ("/journal/alertes", "security-officer"), ("/admin/sauvegardes", "sysadmin"), ("/admin/cles", "sysadmin"), ("/admin/services", "sysadmin"),
    ]

    @Test("each role opens its own pages and is refused the others' (403, journaled as denied)")
    func roleSeparation() async throws {
        try await ConsoleHarness.with("console_roles") { harness in
            for (username, role) in [(ConsoleHarness.dpo, "dpo"), (ConsoleHarness.officer, "security-officer"), (ConsoleHarness.sysadmin, "sysadmin")] {
                let (seed, _) = try await Browser(harness).enrol(username)
                let browser = Browser(harness)
                try await browser.signIn(username, seed: seed)
                for page in Self.pages {
                    let answer = try await browser.get(page.path)
                    if page.role == role {
                        #expect(answer.status == .ok, "\(role) opens \(page.path)")
                    } else {
                        #expect(answer.status == .forbidden, "\(role) is refused \(page.path)")
                        #expect(answer.text.contains("ne donne pas accès"))
                    }
                }
            }
            let denied = try await harness.consoleEvents().filter { try $0.optionalString("reason") == "console.forbidden" }
            #expect(denied.count == 3 * (Self.pages.count) - Self.pages.count)
            #expect(try denied.allSatisfy { try $0.string("result") == "denied" && $0.optionalString("actor_role") != nil })
        }
    }

    @Test("every page view, download and refusal records exactly one event, with the staff member as actor")
    func everyViewJournaled() async throws {
        try await ConsoleHarness.with("console_journaled") { harness in
            let (seed, _) = try await Browser(harness).enrol(ConsoleHarness.officer)
            let browser = Browser(harness)
            try await browser.signIn(ConsoleHarness.officer, seed: seed)
            for path in ["/", "/journal", "/journal/recherche", "/journal/alertes", "/compte", "/admin/cles", "/journal/entree/999999"] {
                let before = try await harness.consoleEvents().count
                let page = try await browser.get(path)
                let events = try await harness.consoleEvents()
                #expect(events.count == before + 1, "\(path) recorded one event")
                let event = try #require(events.last)
                #expect(try event.optionalString("actor_username") == ConsoleHarness.officer)
                #expect(try event.optionalString("actor_role") == "security-officer")
                #expect(try event.string("request_id") == page.headers[.init("Osmose-Request-Id")!])
            }
        }
    }

    @Test("with the console's journal insert revoked, pages answer 503 and show no data")
    func failClosed() async throws {
        let canaryPatient = UUID()
        try await ConsoleHarness.with("console_failclosed") { harness in
            let (seed, _) = try await Browser(harness).enrol(ConsoleHarness.officer)
            let browser = Browser(harness)
            try await browser.signIn(ConsoleHarness.officer, seed: seed)
            // An entry about the canary patient, sequenced into the journal.
            try await harness.admin.transaction { connection in
                var event = AccessEvent(source: "osmose-care", requestID: UUID().uuidString.lowercased(), action: .read, objectType: "patient", result: .success)
                event.patientID = canaryPatient
                event.actorUsername = "agent.canary"
                try connection.record(event)
            }
            try await harness.sequenceIntake()
            let csrf = try await browser.csrf()
            let found = try await browser.post("/journal/recherche", ["csrf": csrf, "patient": canaryPatient.uuidString])
            #expect(found.status == .ok)
            #expect(found.text.contains("agent.canary"))
            let entry = try #require(found.text.firstCapture(#"href="/journal/entree/([0-9]+)""#))

            _ = try await harness.admin.query("REVOKE INSERT ON journal.intake FROM osmose_console")
            let refused = try await browser.post("/journal/recherche", ["csrf": csrf, "patient": canaryPatient.uuidString])
            #expect(refused.status == .serviceUnavailable)
            #expect(!refused.text.contains("agent.canary"))
            #expect(!refused.text.lowercased().contains(canaryPatient.uuidString.lowercased()))
            for path in ["/journal/entree/\(entry)", "/journal", "/"] {
                let page = try await browser.get(path)
                #expect(page.status == .serviceUnavailable, "\(path)")
                #expect(!page.text.contains("agent.canary"))
            }
            _ = try await harness.admin.query("GRANT INSERT ON journal.intake TO osmose_console")
            #expect(try await browser.get("/journal/entree/\(entry)").text.contains("agent.canary"))
        }
    }

    @Test("no personal data in the logs or the error pages (canary)")
    func canary() async throws {
        let canaryPatient = UUID()
        let canaryName = "Canari-\(UUID().uuidString.prefix(8))"
        try await ConsoleHarness.with("console_canary") { harness in
            let (seed, _) = try await Browser(harness).enrol(ConsoleHarness.officer)
            let browser = Browser(harness)
            try await browser.signIn(ConsoleHarness.officer, seed: seed)
            try await harness.admin.transaction { connection in
                var event = AccessEvent(source: "osmose-care", requestID: UUID().uuidString.lowercased(), action: .read, objectType: "patient", result: .success)
                event.patientID = canaryPatient
                event.actorUsername = canaryName.lowercased()
                event.reason = canaryName
                try connection.record(event)
            }
            try await harness.sequenceIntake()
            let csrf = try await browser.csrf()
            // Malformed input carrying the canary: refused with a message that does not echo it.
            let malformed = try await browser.post("/journal/recherche", ["csrf": csrf, "patient": canaryName, "team": canaryName])
            #expect(malformed.status == .badRequest)
            #expect(!malformed.text.contains(canaryName))
            let wrongSignIn = try await Browser(harness).signInWithPassword(canaryName.lowercased(), password: canaryName + canaryName)
            #expect(!wrongSignIn.text.contains(canaryName + canaryName), "the password is never echoed")
            // A failure with the canary patient's data at hand: fail closed, no data.
            _ = try await harness.admin.query("REVOKE INSERT ON journal.intake FROM osmose_console")
            let failed = try await browser.post("/journal/recherche", ["csrf": csrf, "patient": canaryPatient.uuidString])
            #expect(failed.status == .serviceUnavailable)
            #expect(!failed.text.contains(canaryName))
            _ = try await harness.admin.query("GRANT INSERT ON journal.intake TO osmose_console")
            let log = harness.log.text
            #expect(!log.isEmpty, "the failures were logged")
            for canary in [canaryName, canaryName.lowercased(), canaryPatient.uuidString, canaryPatient.uuidString.lowercased(), ConsoleHarness.password] {
                #expect(!log.contains(canary), "the log holds no \(canary)")
            }
        }
    }

    @Test("the staff accounts are apart from the care accounts: the console role reads no care account")
    func staffApartFromCare() async throws {
        try await ConsoleHarness.with("console_apart") { harness in
            let grants = try await harness.admin.query(
                "SELECT has_table_privilege('osmose_console', 'care.users', 'SELECT') AS users, has_table_privilege('osmose_console', 'journal.intake', 'SELECT') AS intake, has_table_privilege('osmose_console', 'journal.entries', 'UPDATE') AS entries"
            ).rows[0]
            #expect(try !grants.bool("users"))
            #expect(try !grants.bool("intake"))
            #expect(try !grants.bool("entries"))
            let seeds = try await harness.admin.query("SELECT count(*) AS n FROM console.staff WHERE totp_seed IS NOT NULL").rows[0].int("n")
            #expect(seeds == 0)
            let (seed, _) = try await Browser(harness).enrol(ConsoleHarness.dpo)
            let stored = try await harness.admin.query("SELECT totp_seed FROM console.staff WHERE username = $1", [ConsoleHarness.dpo]).rows[0].bytes("totp_seed")
            #expect(!String(decoding: stored, as: UTF8.self).contains(seed), "the seed is stored sealed")
        }
    }
}
