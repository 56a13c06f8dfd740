import Foundation
import Testing
import TestSupport

@Suite("Records: history, encryption at rest, sessions, export")
struct RecordTests {
    @Test("Every change is a version: who, when, which fields")
    func history() async throws {
        try await CareHarness.with("history") { harness in
            let token = try await harness.login("agent.sau")
            let patient = try await harness.createPatient(token, lastName: "Bernard")
            let update = try await harness.request("PATCH", "/v1/patients/\(patient)", token: token, body: #"{"last_name":"Bernard-Roux"}"#)
            #expect(update.object["version"] as? Int == 2)
            let history = try await harness.request("GET", "/v1/patients/\(patient)/history", token: token).array
            #expect(history.count == 2)
            #expect(history.last?["changed_fields"] as? [String] == ["last_name"])
            #expect(history.last?["changed_by"] as? String == "agent.sau")
            #expect((history.first?["state"] as? [String: Any])?["last_name"] as? String == "Bernard")
            #expect((history.last?["state"] as? [String: Any])?["last_name"] as? String == "Bernard-Roux")

            let episode = try await harness.createEpisode(token, patient: patient)
            _ = try await harness.request("PATCH", "/v1/episodes/\(episode)", token: token, body: #"{"imaging_status":"requested","imaging_note":"Scanner cérébral"}"#)
            _ = try await harness.request("PATCH", "/v1/episodes/\(episode)", token: token, body: #"{"psychiatric_care":"in-progress","activity_status":"Entretien de crise en cours"}"#)
            let episodeHistory = try await harness.request("GET", "/v1/episodes/\(episode)/history", token: token).array
            #expect(episodeHistory.map { $0["version"] as? Int } == [1, 2, 3])
            #expect(episodeHistory[1]["changed_fields"] as? [String] == ["imaging_note", "imaging_status"])
            let closed = try await harness.request("POST", "/v1/episodes/\(episode)/close", token: try await harness.login("manager.sau"))
            #expect(closed.object["status"] as? String == "closed")
            #expect(try await harness.request("PATCH", "/v1/episodes/\(episode)", token: token, body: #"{"worrying":false}"#).errorCode == "care.conflict")
        }
    }

    @Test("The database holds no plaintext identity or notes; a ciphertext moved to another row does not decrypt")
    func encryptionAtRest() async throws {
        try await CareHarness.with("atrest") { harness in
            let token = try await harness.login("agent.sau")
            let first = try await harness.createPatient(token, lastName: "Vautrinière", firstName: "Philibertine", birthDate: "1977-07-07", ins: "277072A12345619")
            let second = try await harness.createPatient(token, lastName: "Autrenom", firstName: "Autreprenom")
            let episode = try await harness.createEpisode(token, patient: first, reason: "Idees-noires-confidentielles")
            _ = try await harness.createTransmission(token, episode: episode, body: "Transmission-secrete-numero-un")
            let admin = try TestDatabase.administratorConnectionString()
            let dump = try await runProgram("/usr/bin/pg_dump", ["--data-only", "-d", "\(admin) dbname=\(harness.database.name)"])
            #expect(dump.status == 0, "\(dump.standardError)")
            #expect(dump.standardOutput.contains("care.patients"))
            for secret in ["Vautrinière", "Vautriniere", "VAUTRINIERE", "Philibertine", "1977-07-07", "277072A12345619", "Idees-noires-confidentielles", "Transmission-secrete-numero-un"] {
                #expect(!dump.standardOutput.contains(secret), "pg_dump holds no \(secret)")
            }
            try await harness.admin.query("UPDATE care.patients SET last_name = (SELECT last_name FROM care.patients WHERE id = $1::uuid) WHERE id = $2::uuid", [first, second])
            let moved = try await harness.request("GET", "/v1/patients/\(second)", token: token)
            #expect(moved.status == 500)
            #expect(moved.errorCode == "internal.error")
            #expect(!moved.text.contains("Vautrini"))
            #expect(try await harness.events(requestID: try #require(moved.requestID)).first?.string("result") == "error")
        }
    }

    @Test("Sessions: logout ends the token; repeated failures lock the account; a disabled account cannot log in")
    func sessions() async throws {
        try await CareHarness.with("sessions") { harness in
            let token = try await harness.login("agent.sau")
            #expect(try await harness.request("POST", "/v1/auth/logout", token: token, purpose: nil).status == 204)
            #expect(try await harness.request("GET", "/v1/episodes", token: token).errorCode == "auth.invalid_token")

            for _ in 0..<4 {
                let wrong = try await harness.request("POST", "/v1/auth/login", token: nil, purpose: nil, body: #"{"username":"agent.epl","password":"wrong password!!"}"#)
                #expect(wrong.errorCode == "auth.invalid_credentials")
            }
            // Locked: the answer is the one every failed login gets; only the journal says why.
            let fifth = try await harness.request("POST", "/v1/auth/login", token: nil, purpose: nil, body: #"{"username":"agent.epl","password":"wrong password!!"}"#)
            #expect(fifth.errorCode == "auth.invalid_credentials")
            #expect(try await harness.events(requestID: try #require(fifth.requestID)).first?.optionalString("reason") == "auth.account_locked")
            let right = try await harness.request("POST", "/v1/auth/login", token: nil, purpose: nil, body: #"{"username":"agent.epl","password":"\#(CareHarness.password)"}"#)
            #expect(right.status == 401)
            #expect(right.errorCode == "auth.invalid_credentials")
            #expect(right.text == fifth.text.replacingOccurrences(of: fifth.requestID ?? "", with: right.requestID ?? ""))
            #expect(try await harness.events(requestID: try #require(right.requestID)).first?.optionalString("reason") == "auth.account_locked")
            let unknown = try await harness.request("POST", "/v1/auth/login", token: nil, purpose: nil, body: #"{"username":"nobody","password":"whatever at all"}"#)
            #expect(unknown.errorCode == "auth.invalid_credentials")
            let event = try await harness.events(requestID: try #require(unknown.requestID))
            #expect(try event.first?.optionalString("actor_username")?.hasPrefix("unknown:") == true, "a name that is no account is recorded as a keyed hash")
            #expect(try event.first?.string("result") == "denied")

            try await harness.admin.execute("UPDATE care.users SET disabled = true WHERE username = 'manager.sau'")
            let disabled = try await harness.request("POST", "/v1/auth/login", token: nil, purpose: nil, body: #"{"username":"manager.sau","password":"\#(CareHarness.password)"}"#)
            #expect(disabled.errorCode == "auth.invalid_credentials")
        }
    }

    @Test("Export as JSON and as a printable handover sheet, itself an export event")
    func export() async throws {
        try await CareHarness.with("export") { harness in
            let agent = try await harness.login("agent.sau")
            let manager = try await harness.login("manager.sau")
            let patient = try await harness.createPatient(agent, lastName: "O'Hara", firstName: "Éloïse")
            let episode = try await harness.createEpisode(agent, patient: patient, reason: "Crise <aiguë> & agitation")
            _ = try await harness.createTransmission(agent, episode: episode, body: "Box 4 demandé", addressedTo: "epl")
            let json = try await harness.request("GET", "/v1/episodes/\(episode)/export?format=json", token: manager)
            #expect(json.status == 200)
            #expect((json.object["patient"] as? [String: Any])?["last_name"] as? String == "O'Hara")
            #expect((json.object["transmissions"] as? [[String: Any]])?.count == 1)
            let html = try await harness.request("GET", "/v1/episodes/\(episode)/export?format=html", token: manager)
            #expect(html.status == 200)
            #expect(html.text.contains("O&#39;HARA") && html.text.contains("Crise &lt;aiguë&gt; &amp; agitation"))
            #expect(!html.text.contains("<aiguë>"))
            let event = try await harness.events(requestID: try #require(html.requestID))
            #expect(try event.first?.string("action") == "export")
            #expect(try event.first?.optionalString("patient_id") == patient.lowercased())
            #expect(try await harness.request("GET", "/v1/episodes/\(episode)/export?format=pdf", token: manager).errorCode == "request.invalid_query")
        }
    }
}
