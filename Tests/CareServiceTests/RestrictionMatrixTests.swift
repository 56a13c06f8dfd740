import CareRecords
import Foundation
import Journal
import Keyring
import Store
import SubjectRequests
import Testing
import TestSupport

/// The access matrix's endpoints again, on a patient whose processing the DPO
/// restricted (GDPR art. 18): hidden from lists and searches, opened only on a
/// ground of art. 18(2), each opening journaled and recorded for the DPO, exports refused.
@Suite("Restriction of processing on every care endpoint")
struct RestrictionMatrixTests {
    /// Restricts `patient` as the DPO does: a restriction request, its identity checked, then the flag.
    static func restrict(_ harness: CareHarness, patient: String) async throws {
        let ring = try await DataKeyRing.load(on: harness.admin, master: harness.master)
        let register = RequestRegister(actor: .operator("dpo.test@host", role: .dpo), timeZone: TimeZone(identifier: "Europe/Paris")!, ring: ring)
        let id = try #require(UUID(uuidString: patient))
        _ = try await harness.admin.transaction { connection in
            let request = try register.open(
                NewRequest(
                    kind: .restriction, subject: .patientID(id), capacity: .patient, requesterName: "la patiente", receivedAt: Date(),
                    identityCheck: IdentityCheck(checkedBy: "dpo", checkedAt: Date(), documents: "carte d'identité")), on: connection)
            return try Restrictions(register: register).restrict(number: request.number, on: connection)
        }
    }

    /// The patient a prepared request is about, found from its path or body, as
    /// PostgreSQL prints a uuid (lower case; the API's JSON spells them in upper case).
    static func patient(of path: String, body: String?, _ harness: CareHarness) async throws -> String? {
        try await named(in: path, body: body, harness)?.lowercased()
    }

    private static func named(in path: String, body: String?, _ harness: CareHarness) async throws -> String? {
        let parts = path.split(separator: "?")[0].split(separator: "/").map(String.init)
        guard parts.count >= 3 else {
            if let body, let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] { return object["patient_id"] as? String }
            return nil
        }
        let id = parts[2]
        switch parts[1] {
        case "patients": return id
        case "episodes": return try await harness.admin.query("SELECT patient_id::text AS p FROM care.episodes WHERE id = $1::uuid", [id]).rows.first?.string("p")
        case "transmissions":
            return try await harness.admin.query(
                "SELECT e.patient_id::text AS p FROM care.transmissions t JOIN care.episodes e ON e.id = t.episode_id WHERE t.id = $1::uuid", [id]
            ).rows.first?.string("p")
        default: return nil
        }
    }

    @Test("Every endpoint that opens a restricted record refuses without a ground, serves with one (journaled, recorded for the DPO), and never exports")
    func openings() async throws {
        try await CareHarness.with("restriction_matrix") { harness in
            var tokens: [String: String] = [:]
            for user in CareHarness.users { tokens[user.name] = try await harness.login(user.name) }
            var checked = 0
            for testCase in AccessMatrixTests.cases {
                let (path, body) = try await testCase.prepare(harness, tokens["agent.sau"]!)
                guard let patient = try await Self.patient(of: path, body: body, harness) else { continue }
                try await Self.restrict(harness, patient: patient)
                let user = testCase.allowed.contains("manager.sau") ? "manager.sau" : testCase.allowed.sorted().first!
                let label = "\(testCase.name) as \(user)"

                let before = try await harness.careRowCounts()
                let refused = try await harness.request(testCase.method, path, token: tokens[user], purpose: testCase.purpose, body: body)
                #expect(refused.status == 403 && refused.errorCode == "care.restricted", "\(label): \(refused.status) \(refused.text)")
                #expect(try await harness.careRowCounts() == before, "\(label): nothing written")
                let refusal = try await harness.events(requestID: try #require(refused.requestID))
                #expect(refusal.count == 1, "\(label): one event")
                #expect(try refusal.first?.string("result") == "denied" && refusal.first?.optionalString("reason") == "care.restricted", "\(label)")
                #expect(try refusal.first?.optionalString("patient_id") == patient, "\(label): the refusal names the patient")

                let opened = try await harness.request(
                    testCase.method, path, token: tokens[user], purpose: testCase.purpose, body: body, headers: ["Osmose-Restriction-Override": "consent"])
                let events = try await harness.events(requestID: try #require(opened.requestID))
                #expect(events.count == 1, "\(label): one event")
                if testCase.action == "export" {
                    #expect(opened.status == 403 && opened.errorCode == "care.restricted", "\(label): exports refused whatever the ground")
                } else {
                    #expect(opened.status == testCase.successStatus, "\(label): \(opened.status) \(opened.text)")
                    #expect(try events.first?.optionalString("reason") == "restriction-override:consent", "\(label): the event names the ground")
                    let recorded = try await harness.admin.query(
                        "SELECT ground, patient_id::text AS p FROM care.restriction_overrides WHERE care_request_id = $1", [opened.requestID!]
                    ).rows
                    let ground = try recorded.first?.string("ground")
                    let recordedPatient = try recorded.first?.string("p")
                    #expect(recorded.count == 1 && ground == "consent" && recordedPatient == patient, "\(label): recorded for the DPO")
                }
                checked += 1
            }
            #expect(checked >= 12, "the endpoints that open a patient's record")
            let bad = try await harness.request(
                "GET", "/v1/patients/\(try await harness.createPatient(tokens["agent.sau"]!))", token: tokens["agent.sau"], headers: ["Osmose-Restriction-Override": "because"])
            #expect(bad.status == 400 && bad.errorCode == "request.invalid_field")
        }
    }

    @Test("Lists and searches hide a restricted patient unless a ground is named; lifting the restriction brings them back")
    func listsAndSearches() async throws {
        try await CareHarness.with("restriction_lists") { harness in
            let token = try await harness.login("agent.sau")
            let patient = try await harness.createPatient(token, lastName: "Garnier", firstName: "Zoé", birthDate: "1988-08-08")
            let episode = try await harness.createEpisode(token, patient: patient)
            let other = try await harness.createPatient(token, lastName: "Garnier", firstName: "Zoé", birthDate: "1988-08-08", ins: "288087512345621")
            _ = try await harness.createEpisode(token, patient: other)
            try await Self.restrict(harness, patient: patient)
            let search = "/v1/patients?last_name=Garnier&first_name=Zoe&birth_date=1988-08-08"

            let hidden = try await harness.request("GET", search, token: token)
            #expect(hidden.status == 200 && hidden.array.compactMap { $0["id"] as? String } == [other])
            let listed = try await harness.request("GET", "/v1/episodes?state=all", token: token)
            #expect(!listed.array.contains { $0["id"] as? String == episode } && listed.array.contains { $0["patient_id"] as? String == other })
            #expect(try await harness.events(requestID: hidden.requestID!).first?.optionalString("reason") == nil)

            let shown = try await harness.request("GET", search, token: token, headers: ["Osmose-Restriction-Override": "protection-of-others"])
            #expect(Set(shown.array.compactMap { $0["id"] as? String }) == [patient, other])
            #expect(try await harness.events(requestID: shown.requestID!).first?.optionalString("reason") == "restriction-override:protection-of-others")
            let all = try await harness.request("GET", "/v1/episodes?state=all", token: token, headers: ["Osmose-Restriction-Override": "legal-claims"])
            #expect(all.array.contains { $0["id"] as? String == episode })
            let recorded = try await harness.admin.query(
                "SELECT endpoint FROM care.restriction_overrides WHERE care_request_id = ANY($1::text[]) ORDER BY endpoint", ["{\(shown.requestID!),\(all.requestID!)}"]
            ).rows.map { try $0.string("endpoint") }
            #expect(recorded == ["episode list", "patient search"])

            let ring = try await DataKeyRing.load(on: harness.admin, master: harness.master)
            let register = RequestRegister(actor: .operator("dpo.test@host", role: .dpo), timeZone: TimeZone(identifier: "Europe/Paris")!, ring: ring)
            let number = try await harness.admin.query("SELECT max(number) AS n FROM dsar.requests").rows[0].int64("n")
            _ = try await harness.admin.transaction { connection in try Restrictions(register: register).lift(number: number, reason: .requestWithdrawn, on: connection) }
            let back = try await harness.request("GET", search, token: token)
            #expect(back.array.count == 2)
            #expect(try await harness.request("GET", "/v1/patients/\(patient)", token: token).status == 200)
        }
    }
}
