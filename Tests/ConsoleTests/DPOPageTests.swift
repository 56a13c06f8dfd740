import CareRecords
import Foundation
import HTTPTypes
import Journal
import Keyring
import Store
import Testing
import TestSupport

/// The DPO's pages over the subject-request register and retention: the DPO alone
/// opens them, each action goes through the library (its evidence steps and events
/// under osmose-console, in the DPO's name), refusals change nothing.
@Suite("Console DPO pages")
struct DPOPageTests {
    static let dpoPages = ["/dpo/demandes", "/dpo/demandes/nouvelle", "/dpo/conservation", "/dpo/conservation/gels", "/dpo/conservation/certificats"]

    /// Signs `username` in (enrolled first) and returns the browser.
    static func signedIn(_ harness: ConsoleHarness, _ username: String) async throws -> Browser {
        let (seed, _) = try await Browser(harness).enrol(username)
        let browser = Browser(harness)
        try await browser.signIn(username, seed: seed)
        return browser
    }

    /// A care patient, written through the care store as osmose-care writes it.
    static func patient(_ harness: ConsoleHarness, last: String = "Lefèvre", first: String = "Anaïs") async throws -> UUID {
        let master = try #require(harness.master)
        let ring = try await DataKeyRing.load(on: harness.admin, master: master)
        let store = CareStore(ring: ring)
        let team = UUID()
        let user = UUID()
        try await harness.admin.query("INSERT INTO care.teams (id, code, name) VALUES ($1, 'sau', 'Urgences')", [team])
        try await harness.admin.query(
            "INSERT INTO care.users (id, username, display_name, role, team_id, password_hash) VALUES ($1, 'camille.sau', 'Camille', 'agent', $2, 'x')", [user, team])
        let principal = Principal(userID: user, username: "camille.sau", role: .agent, teamID: team, teamCode: "sau")
        let input = try CareJSON.decode(
            PatientInput.self,
            from: Array(try JSONSerialization.data(withJSONObject: ["last_name": last, "first_name": first, "birth_date": "1996-04-21", "sex": "female"])))
        return try await harness.admin.transaction { connection in try store.createPatient(input, by: principal, on: connection).id }
    }

    /// `date` as the form's day and time fields, Paris time.
    static func formMoment(_ date: Date) -> (day: String, time: String) {
        let formatter = DateFormatter()
        formatter.timeZone = TimeZone(identifier: "Europe/Paris")
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        let parts = formatter.string(from: date).split(separator: " ")
        return (String(parts[0]), String(parts[1]))
    }

    static func openForm(patient: UUID, daysAgo: Double, csrf: String, late: Bool = false) -> [String: String] {
        let received = formMoment(Date().addingTimeInterval(-daysAgo * 86_400))
        var form = [
            "csrf": csrf, "kind": "access", "subject_by": "patient", "patient_id": patient.uuidString, "capacity": "patient",
            "requester_name": "Anaïs Lefèvre", "requester_contact": "12 rue des Lilas, 75011 Paris", "received_on": received.day, "received_time": received.time,
        ]
        if late { form["acknowledge_late"] = "oui" }
        return form
    }

    @Test("the DPO opens her pages; the security officer and the sysadmin are refused them, and the DPO is refused theirs")
    func roleSeparationBothWays() async throws {
        try await ConsoleHarness.with("console_dpo_roles", keyring: true) { harness in
            let dpo = try await Self.signedIn(harness, ConsoleHarness.dpo)
            for path in Self.dpoPages {
                #expect(try await dpo.get(path).status == .ok, "the DPO opens \(path)")
            }
            for path in ["/journal", "/journal/recherche", "/admin/sauvegardes", "/admin/cles"] {
                #expect(try await dpo.get(path).status == .forbidden, "the DPO is refused \(path)")
            }
            for username in [ConsoleHarness.officer, ConsoleHarness.sysadmin] {
                let other = try await Self.signedIn(harness, username)
                for path in Self.dpoPages {
                    let page = try await other.get(path)
                    #expect(page.status == .forbidden, "\(username) is refused \(path)")
                    #expect(page.hidden("csrf")?.count == 43, "the refusal page's sign-out form works")
                    #expect(!page.text.contains("register"))
                }
                // An action with a valid CSRF token of their own is refused too, and changes nothing.
                let csrf = try await other.csrf()
                let refused = try await other.post(
                    "/dpo/conservation/gels", ["csrf": csrf, "scope": "journal-period", "from": "2026-01-01", "through": "2026-01-31",
                        "reason": "Contentieux prud'homal en cours", "reference": "RG 26/001"])
                #expect(refused.status == .forbidden)
                #expect(try await other.post("/dpo/conservation/plans", ["csrf": csrf]).status == .forbidden)
            }
            let holds = try await harness.admin.query("SELECT count(*) AS n FROM ops.legal_holds").rows[0].int("n")
            #expect(holds == 0)
            let plans = try await harness.admin.query("SELECT count(*) AS n FROM ops.retention_plans").rows[0].int("n")
            #expect(plans == 0)
            let denied = try await harness.consoleEvents().filter {
                try $0.optionalString("reason") == "console.forbidden" && ($0.optionalString("actor_role") ?? "") != "dpo"
            }
            #expect(denied.count == 2 * (Self.dpoPages.count + 2))
        }
    }

    @Test("the DPO registers a request from the form; the register shows its deadline, the file its rule, identity check, notes and timeline")
    func registerAndFile() async throws {
        try await ConsoleHarness.with("console_dpo_register", keyring: true) { harness in
            let patient = try await Self.patient(harness)
            let dpo = try await Self.signedIn(harness, ConsoleHarness.dpo)
            let csrf = try await dpo.csrf()
            let opened = try await dpo.post("/dpo/demandes/nouvelle", Self.openForm(patient: patient, daysAgo: 2, csrf: csrf))
            #expect(opened.status == .seeOther)
            #expect(opened.location == "/dpo/demandes/1")
            // A request received 40 days ago is past its deadlines: refused unless the delay is acknowledged.
            let late = try await dpo.post("/dpo/demandes/nouvelle", Self.openForm(patient: patient, daysAgo: 40, csrf: csrf))
            #expect(late.status == .conflict)
            #expect(late.text.contains("dsar.deadline_past"))
            #expect(try await dpo.post("/dpo/demandes/nouvelle", Self.openForm(patient: patient, daysAgo: 40, csrf: csrf, late: true)).status == .seeOther)

            let register = try await dpo.get("/dpo/demandes")
            #expect(register.status == .ok)
            #expect(register.text.contains(#"href="/dpo/demandes/1""#))
            #expect(register.text.contains(#"<tr class="denied"><td><a href="/dpo/demandes/2">"#), "the late request is highlighted")
            #expect(register.text.contains("en retard"))
            #expect(!register.text.contains("Anaïs"), "the register lists no personal data")
            let erasures = try await dpo.get("/dpo/demandes?statut=toutes&type=erasure")
            #expect(!erasures.text.contains(#"href="/dpo/demandes/1""#))
            let dueSoon = try await dpo.get("/dpo/demandes?echeance=0")
            #expect(dueSoon.text.contains(#"href="/dpo/demandes/2""#) && !dueSoon.text.contains(#"href="/dpo/demandes/1""#))
            #expect(try await dpo.get("/dpo/demandes?type=nimportequoi").status == .badRequest)

            let file = try await dpo.get("/dpo/demandes/1")
            #expect(file.text.contains("Anaïs Lefèvre"), "the requester's name, decrypted")
            #expect(file.text.contains("csp-eight-days"))
            #expect(file.text.contains("CSP art. L1111-7 et R1111-1"))
            #expect(file.text.contains("Demande enregistrée") && file.text.contains("Délais calculés"))
            #expect(file.text.contains(#"id="identity-form""#))

            let today = Self.formMoment(Date())
            let identity = try await dpo.post(
                "/dpo/demandes/1/identite", ["csrf": csrf, "checked_by": "Accueil des admissions", "checked_on": today.day, "checked_time": today.time,
                    "documents": "carte d'identité n° 123456789012"])
            #expect(identity.status == .seeOther)
            #expect(try await dpo.post("/dpo/demandes/1/notes", ["csrf": csrf, "note": "Appel de la patiente : envoi par courrier recommandé."]).status == .seeOther)
            let forged = try await dpo.post("/dpo/demandes/1/notes", ["csrf": "forged", "note": "note forgée"])
            #expect(forged.status == .forbidden)
            let after = try await dpo.get("/dpo/demandes/1")
            #expect(after.text.contains("Accueil des admissions") && after.text.contains("carte d&#39;identité n° 123456789012"))
            #expect(after.text.contains("Appel de la patiente : envoi par courrier recommandé."))
            #expect(!after.text.contains("note forgée"))
            #expect(after.text.contains("Identité vérifiée") && after.text.contains("Note ajoutée"))
            #expect(try await dpo.get("/dpo/demandes/999").status == .notFound)

            // The library's evidence steps are journaled under osmose-console, in the DPO's name and role.
            let steps = try await harness.admin.query(
                "SELECT source, actor_username, actor_role, purpose FROM journal.intake WHERE action = 'subject-request' AND object_type = 'subject-request'"
            ).rows
            #expect(steps.count >= 6)
            #expect(try steps.allSatisfy { try $0.string("source") == "osmose-console" && $0.optionalString("actor_role") == "dpo" })
            #expect(try steps.allSatisfy { try $0.optionalString("actor_username") == ConsoleHarness.dpo })
            let openedBy = try await harness.admin.query("SELECT opened_by FROM dsar.requests WHERE number = 1").rows[0].string("opened_by")
            #expect(openedBy == "\(ConsoleHarness.dpo) via osmose-console")
            // The page views name the patient with the purpose subject-request.
            let views = try await harness.consoleEvents().filter {
                try $0.optionalString("object_type") == "subject-request" && $0.string("action") == "read" && $0.string("result") == "success"
            }
            #expect(views.count == 2, "the two views of the file")
            #expect(try views.allSatisfy { try $0.optionalString("patient_id") == patient.uuidString.lowercased() && $0.optionalString("purpose") == "subject-request" })
        }
    }

    @Test("120 requests: three pages of at most 50, the filters kept by the previous and next links, the total shown, a request on page 3 reachable")
    func registerPages() async throws {
        try await ConsoleHarness.with("console_dpo_pages", keyring: true) { harness in
            let patient = try await Self.patient(harness)
            let dpo = try await Self.signedIn(harness, ConsoleHarness.dpo)
            let csrf = try await dpo.csrf()
            #expect(try await dpo.post("/dpo/demandes/nouvelle", Self.openForm(patient: patient, daysAgo: 2, csrf: csrf)).status == .seeOther)
            // 119 more, copied from the first as the benchmark does: every kind in turn, a third closed.
            try await harness.admin.query(
                """
                WITH template AS (SELECT * FROM dsar.requests WHERE number = 1),
                made AS (
                    INSERT INTO dsar.requests (id, kind, subject_type, patient_id, requester_capacity, requester_name, received_at, received_on,
                        health_information, status, outcome, closed_at, opened_by)
                    SELECT gen_random_uuid(), (ARRAY['access','rectification','restriction','erasure','objection','portability'])[1 + g % 6], 'patient',
                        t.patient_id, 'patient', t.requester_name, now() - (g % 20) * interval '1 day', (now() - (g % 20) * interval '1 day')::date, false,
                        CASE WHEN g % 3 = 0 THEN 'closed' ELSE 'open' END, CASE WHEN g % 3 = 0 THEN 'withdrawn' END, CASE WHEN g % 3 = 0 THEN now() END, 'tests'
                    FROM template t, generate_series(1, 119) AS g
                    RETURNING id, received_on)
                INSERT INTO dsar.deadlines (request_id, rule, due_on, citation)
                SELECT id, 'gdpr-one-month', received_on + interval '1 month', 'RGPD art. 12(3)' FROM made
                """)
            func numbers(_ page: Browser.Page) -> [String] { page.text.allCaptures(#"<td><a href="/dpo/demandes/([0-9]+)">"#) }
            func link(_ page: Browser.Page, _ rel: String) -> String? {
                page.text.firstCapture(#"<a href="([^"]*)" rel="\#(rel)">"#)?.replacingOccurrences(of: "&amp;", with: "&")
            }
            let first = try await dpo.get("/dpo/demandes?statut=toutes")
            #expect(first.status == .ok)
            #expect(first.text.contains("Demandes : 120"), "the total over every page")
            #expect(numbers(first) == (71...120).reversed().map(String.init), "newest first, 50 a page")
            #expect(link(first, "prev") == nil && link(first, "first") == nil)
            #expect(first.text.contains("Page 1 sur 3"))
            let toSecond = try #require(link(first, "next"))
            #expect(toSecond == "/dpo/demandes?statut=toutes&page=2")
            #expect(link(first, "last") == "/dpo/demandes?statut=toutes&page=3")
            let second = try await dpo.get(toSecond)
            #expect(numbers(second) == (21...70).reversed().map(String.init))
            #expect(link(second, "prev") == "/dpo/demandes?statut=toutes&page=1")
            let third = try await dpo.get(try #require(link(second, "next")))
            #expect(numbers(third) == (1...20).reversed().map(String.init))
            #expect(link(third, "next") == nil && third.text.contains("Page 3 sur 3 — demandes 101 à 120"))
            // The first request, on page 3, opens.
            #expect(third.text.contains(#"href="/dpo/demandes/1""#))
            #expect(try await dpo.get("/dpo/demandes/1").status == .ok)

            // Filtered: the erasures of every status, 20 of them, on one page; open ones by due day keep their filters across pages.
            let erasures = try await dpo.get("/dpo/demandes?statut=toutes&type=erasure")
            #expect(erasures.text.contains("Demandes : 20") && numbers(erasures).count == 20 && link(erasures, "next") == nil)
            let expected = try await harness.admin.query(
                """
                SELECT number FROM (
                    SELECT r.number, (SELECT min(d.due_on) FROM dsar.deadlines d WHERE d.request_id = r.id AND d.in_force AND d.due_on IS NOT NULL) AS due
                    FROM dsar.requests r WHERE r.status = 'open') x
                WHERE due <= (now() AT TIME ZONE 'Europe/Paris')::date + 28 ORDER BY due, number
                """
            ).rows.map { String(try $0.int64("number")) }
            #expect(expected.count > 50 && expected.count <= 100, "two pages of open requests due within 28 days")
            let dueFirst = try await dpo.get("/dpo/demandes?statut=ouvertes&echeance=28")
            let dueNext = try #require(link(dueFirst, "next"))
            #expect(dueNext == "/dpo/demandes?statut=ouvertes&echeance=28&page=2")
            let dueSecond = try await dpo.get(dueNext)
            #expect(numbers(dueFirst) + numbers(dueSecond) == expected, "by due day then number, across the pages")
            #expect(dueSecond.text.contains("Demandes : \(expected.count)"))

            // A page past the end shows the last page; a page that is not a number is refused by name.
            #expect(numbers(try await dpo.get("/dpo/demandes?statut=toutes&page=9")) == (1...20).reversed().map(String.init))
            let bad = try await dpo.get("/dpo/demandes?statut=toutes&page=deux")
            #expect(bad.status == .badRequest && bad.text.contains("numéro de page"))
        }
    }

    @Test("without the master key, the pages that decrypt say so and show nothing; the register still lists")
    func withoutMasterKey() async throws {
        try await ConsoleHarness.with("console_dpo_nokey") { harness in
            let dpo = try await Self.signedIn(harness, ConsoleHarness.dpo)
            #expect(try await dpo.get("/dpo/demandes").status == .ok)
            let csrf = try await dpo.csrf()
            let refused = try await dpo.post("/dpo/demandes/nouvelle", Self.openForm(patient: UUID(), daysAgo: 1, csrf: csrf))
            #expect(refused.status == .serviceUnavailable)
            #expect(refused.text.contains("console.master_key_missing"))
            #expect(try await harness.admin.query("SELECT count(*) AS n FROM dsar.requests").rows[0].int("n") == 0)
        }
    }

    @Test("a retention plan is computed, shown with its digest, and approved by that digest only; a stale digest is refused and nothing recorded")
    func planApproval() async throws {
        try await ConsoleHarness.with("console_dpo_plan", keyring: true) { harness in
            _ = try await Self.patient(harness)
            let dpo = try await Self.signedIn(harness, ConsoleHarness.dpo)
            let csrf = try await dpo.csrf()
            let computed = try await dpo.post("/dpo/conservation/plans", ["csrf": csrf])
            #expect(computed.status == .seeOther)
            #expect(computed.location == "/dpo/conservation/plans/1")
            let page = try await dpo.get("/dpo/conservation/plans/1")
            let shown = try #require(page.text.firstCapture(#"id="plan-sha256">([0-9a-f]{64})<"#))
            let stored = try await harness.admin.query("SELECT sha256, computed_by FROM ops.retention_plans WHERE id = 1").rows[0]
            #expect(try stored.string("sha256") == shown)
            #expect(try stored.string("computed_by") == "\(ConsoleHarness.dpo) via osmose-console")
            #expect(page.text.contains(#"name="sha256" type="text" readonly value="\#(shown)""#))

            // A second plan; the form of plan 1 posted to plan 2 carries a digest that is not plan 2's.
            _ = try await dpo.post("/dpo/conservation/plans", ["csrf": csrf])
            let stale = try await dpo.post("/dpo/conservation/plans/2/approbation", ["csrf": csrf, "sha256": shown, "approver": "Dominique Martin"])
            #expect(stale.status == .conflict)
            #expect(stale.text.contains("retention.digest_mismatch"))

            // Plan 1 changed behind the page's back (its text and digest rewritten): the digest the page showed is refused.
            try await harness.admin.query("ALTER TABLE ops.retention_plans DISABLE TRIGGER immutable")
            try await harness.admin.query(
                "UPDATE ops.retention_plans SET document = replace(document, '\"items\":[', '\"items\":[ '), sha256 = encode(sha256(convert_to(replace(document, '\"items\":[', '\"items\":[ '), 'UTF8')), 'hex') WHERE id = 1")
            let changed = try await dpo.post("/dpo/conservation/plans/1/approbation", ["csrf": csrf, "sha256": shown, "approver": "Dominique Martin"])
            #expect(changed.status == .conflict)
            #expect(changed.text.contains("retention.digest_mismatch"))
            #expect(try await harness.admin.query("SELECT count(*) AS n FROM ops.retention_approvals").rows[0].int("n") == 0)
            try await harness.admin.query("ALTER TABLE ops.retention_plans ENABLE TRIGGER immutable")

            // Plan 2 approved by its own digest, as shown.
            let second = try #require(try await dpo.get("/dpo/conservation/plans/2").text.firstCapture(#"id="plan-sha256">([0-9a-f]{64})<"#))
            let approved = try await dpo.post("/dpo/conservation/plans/2/approbation", ["csrf": csrf, "sha256": second, "approver": "Dominique Martin"])
            #expect(approved.status == .seeOther)
            let approval = try await harness.admin.query("SELECT sha256, approver_name, approved_by FROM ops.retention_approvals WHERE plan_id = 2").rows
            #expect(approval.count == 1)
            #expect(try approval.first?.string("sha256") == second)
            #expect(try approval.first?.string("approver_name") == "Dominique Martin")
            #expect(try await dpo.get("/dpo/conservation/plans/2").text.contains("Dominique Martin"))
            let again = try await dpo.post("/dpo/conservation/plans/2/approbation", ["csrf": csrf, "sha256": second, "approver": "Dominique Martin"])
            #expect(again.status == .conflict)
            let events = try await harness.admin.query(
                "SELECT source, actor_role FROM journal.intake WHERE object_type = 'retention-plan' AND action = 'retention-admin' AND reason LIKE 'plan 2 approved%'").rows
            #expect(events.count == 2, "the library's event and the console's own")
            #expect(try events.allSatisfy { try $0.string("source") == "osmose-console" && $0.optionalString("actor_role") == "dpo" })
        }
    }

    @Test("the DPO places and releases a legal hold; a second release is refused")
    func holds() async throws {
        try await ConsoleHarness.with("console_dpo_holds", keyring: true) { harness in
            let patient = try await Self.patient(harness)
            let dpo = try await Self.signedIn(harness, ConsoleHarness.dpo)
            let csrf = try await dpo.csrf()
            let placed = try await dpo.post(
                "/dpo/conservation/gels", ["csrf": csrf, "scope": "patient", "patient": patient.uuidString, "reason": "Contentieux en responsabilité médicale", "reference": "TJ Paris 26/0042"])
            #expect(placed.status == .seeOther)
            let short = try await dpo.post("/dpo/conservation/gels", ["csrf": csrf, "scope": "patient", "patient": patient.uuidString, "reason": "court", "reference": "x"])
            #expect(short.status == .badRequest)
            #expect(short.text.contains("retention.invalid_argument"))
            let list = try await dpo.get("/dpo/conservation/gels")
            #expect(list.text.contains("TJ Paris 26/0042") && list.text.contains(#"id="release-hold-1""#))
            let released = try await dpo.post("/dpo/conservation/gels/1/levee", ["csrf": csrf, "reason": "Désistement de l'instance le 3 décembre"])
            #expect(released.status == .seeOther)
            let row = try await harness.admin.query("SELECT released_by, release_reason FROM ops.legal_holds WHERE id = 1").rows[0]
            #expect(try row.optionalString("released_by") == "\(ConsoleHarness.dpo) via osmose-console")
            let twice = try await dpo.post("/dpo/conservation/gels/1/levee", ["csrf": csrf, "reason": "Désistement de l'instance le 3 décembre"])
            #expect(twice.status == .conflict)
            #expect(twice.text.contains("retention.refused"))
            #expect(!(try await dpo.get("/dpo/conservation/gels").text.contains(#"id="release-hold-1""#)))
        }
    }

    @Test("the intake rows the console's role inserts are bound to it: its source, a staff role or none, the present")
    func intakeBoundToRole() async throws {
        try await TestDatabase.with("console_dpo_intake") { database in
            let admin = try await Connection.connect(database.connectionString, logger: testLogger)
            try await migrate(admin)
            await admin.close()
            let console = try await Connection.connect("\(database.connectionString) user=osmose_console", logger: testLogger)
            func insert(source: String, role: String?, occurredAt: Date = Date()) async throws {
                var event = AccessEvent(source: source, requestID: UUID().uuidString.lowercased(), action: .read, objectType: "test", result: .success)
                event.actorRole = role
                event.actorUsername = "dpo.ana"
                event.occurredAt = occurredAt
                let recorded = event
                try await console.transaction { connection in try connection.record(recorded) }
            }
            do {
                try await insert(source: "osmose-console", role: "dpo")
                try await insert(source: "osmose-console", role: "security-officer")
                try await insert(source: "osmose-console", role: nil)
                for (source, role) in [("osmose-care", "agent"), ("osmosectl", "dpo"), ("osmose-dsard", "system"), ("osmose-console", "system"), ("osmose-console", "agent")] {
                    await #expect(throws: StoreError.self, "\(source) as \(role) is refused") { try await insert(source: source, role: role) }
                }
                await #expect(throws: StoreError.self, "an event dated last year is refused") {
                    try await insert(source: "osmose-console", role: "dpo", occurredAt: Date().addingTimeInterval(-365 * 86_400))
                }
            } catch {
                await console.close()
                throw error
            }
            await console.close()
        }
    }
}
