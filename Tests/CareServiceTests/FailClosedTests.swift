import Foundation
import Testing
import TestSupport

@Suite("Fail closed: no event, no data")
struct FailClosedTests {
    @Test("With INSERT on the intake revoked, reads return 503 without patient data and writes leave no trace")
    func revokedIntake() async throws {
        try await CareHarness.with("failclosed") { harness in
            let token = try await harness.login("agent.sau")
            let patient = try await harness.createPatient(token, lastName: "Zyxwvut", firstName: "Quentinelle")
            let episode = try await harness.createEpisode(token, patient: patient, reason: "Motif-tres-particulier")
            try await harness.admin.execute("REVOKE INSERT ON journal.intake FROM osmose_care")
            let before = try await harness.careRowCounts()

            for path in ["/v1/patients/\(patient)", "/v1/episodes/\(episode)", "/v1/episodes/\(episode)/transmissions",
                         "/v1/patients?last_name=Zyxwvut&first_name=Quentinelle&birth_date=1990-05-17", "/v1/episodes/\(episode)/export"] {
                let reply = try await harness.request("GET", path, token: token)
                #expect(reply.status == 503, "\(path)")
                #expect(reply.errorCode == "journal.unavailable", "\(path)")
                for secret in ["Zyxwvut", "Quentinelle", "Motif-tres-particulier", "1990-05-17"] {
                    #expect(!reply.text.contains(secret), "\(path) leaks nothing")
                }
            }
            let create = try await harness.request(
                "POST", "/v1/patients", token: token, body: #"{"last_name":"Nouveau","first_name":"Patient","birth_date":"2000-01-01","sex":"male"}"#)
            #expect(create.status == 503)
            let update = try await harness.request("PATCH", "/v1/episodes/\(episode)", token: token, body: #"{"worrying":false}"#)
            #expect(update.status == 503)
            let transmission = try await harness.request("POST", "/v1/episodes/\(episode)/transmissions", token: token, body: #"{"body":"x"}"#)
            #expect(transmission.status == 503)
            #expect(try await harness.request("POST", "/v1/auth/login", token: nil, purpose: nil, body: #"{"username":"agent.sau","password":"\#(CareHarness.password)"}"#).status == 503)
            #expect(try await harness.careRowCounts() == before, "no trace in the care tables")
            #expect(try await harness.admin.query("SELECT count(*) AS n FROM care.sessions").rows[0].int("n") == 1, "no session opened")

            try await harness.admin.execute("GRANT INSERT ON journal.intake TO osmose_care")
            #expect(try await harness.request("GET", "/v1/patients/\(patient)", token: token).status == 200)
        }
    }
}

@Suite("Bad input is refused with a stable code and writes nothing")
struct BadInputTests {
    @Test("Malformed, oversized, invalid, unknown, missing purpose, bad tokens, another team's episode")
    func refusals() async throws {
        try await CareHarness.with("badinput") { harness in
            let token = try await harness.login("agent.sau")
            let patient = try await harness.createPatient(token)
            let eplToken = try await harness.login("agent.epl")
            let eplEpisode = try await harness.createEpisode(eplToken, patient: patient)
            try await harness.admin.query(
                "INSERT INTO care.sessions (token_hash, user_id, expires_at) SELECT sha256('osm_expiredtoken'::bytea), id, clock_timestamp() - interval '1 minute' FROM care.users WHERE username = 'agent.sau'")
            let before = try await harness.careRowCounts()
            let big = String(repeating: "x", count: 100_000)
            let cases: [(String, String, String, String?, String?, String?, Int, String)] = [
                ("malformed JSON", "POST", "/v1/patients", token, "care", #"{"last_name": "#, 400, "request.malformed_json"),
                ("not an object", "POST", "/v1/patients", token, "care", #"["x"]"#, 400, "request.malformed_json"),
                ("oversized body", "POST", "/v1/patients", token, "care", #"{"last_name":"\#(big)"}"#, 413, "request.too_large"),
                ("impossible date", "POST", "/v1/patients", token, "care", #"{"last_name":"A","first_name":"B","birth_date":"2001-02-30","sex":"male"}"#, 400, "request.invalid_field"),
                ("future date", "POST", "/v1/patients", token, "care", #"{"last_name":"A","first_name":"B","birth_date":"2999-01-01","sex":"male"}"#, 400, "request.invalid_field"),
                ("date format", "POST", "/v1/patients", token, "care", #"{"last_name":"A","first_name":"B","birth_date":"17/05/1990","sex":"male"}"#, 400, "request.invalid_field"),
                ("unknown field", "POST", "/v1/patients", token, "care", #"{"last_name":"A","first_name":"B","birth_date":"2001-02-03","sex":"male","admin":true}"#, 400, "request.unknown_field"),
                ("missing field", "POST", "/v1/patients", token, "care", #"{"last_name":"A","birth_date":"2001-02-03","sex":"male"}"#, 400, "request.missing_field"),
                ("wrong type", "POST", "/v1/patients", token, "care", #"{"last_name":42,"first_name":"B","birth_date":"2001-02-03","sex":"male"}"#, 400, "request.invalid_field"),
                ("unknown enum", "POST", "/v1/patients", token, "care", #"{"last_name":"A","first_name":"B","birth_date":"2001-02-03","sex":"robot"}"#, 400, "request.invalid_field"),
                ("markup in a name", "POST", "/v1/patients", token, "care", #"{"last_name":"<script>","first_name":"B","birth_date":"2001-02-03","sex":"male"}"#, 400, "request.invalid_field"),
                ("bad INS key", "POST", "/v1/patients", token, "care", #"{"last_name":"A","first_name":"B","birth_date":"2001-02-03","sex":"male","ins":"184037512345600"}"#, 400, "request.invalid_field"),
                ("missing purpose", "GET", "/v1/patients/\(patient)", token, nil, nil, 400, "request.purpose_required"),
                ("unknown purpose", "GET", "/v1/patients/\(patient)", token, "curiosity", nil, 400, "request.invalid_purpose"),
                ("no token", "GET", "/v1/patients/\(patient)", nil, "care", nil, 401, "auth.required"),
                ("forged token", "GET", "/v1/patients/\(patient)", "osm_forgedforgedforgedforgedforgedforged", "care", nil, 401, "auth.invalid_token"),
                ("not a token", "GET", "/v1/patients/\(patient)", "'; DROP TABLE care.patients; --", "care", nil, 401, "auth.invalid_token"),
                ("expired token", "GET", "/v1/patients/\(patient)", "osm_expiredtoken", "care", nil, 401, "auth.session_expired"),
                ("another team's episode", "GET", "/v1/episodes/\(eplEpisode)", token, "care", nil, 403, "care.forbidden"),
                ("write on another team's episode", "POST", "/v1/episodes/\(eplEpisode)/transmissions", token, "care", #"{"body":"x"}"#, 403, "care.forbidden"),
                ("not a UUID", "GET", "/v1/patients/12345", token, "care", nil, 400, "request.invalid_field"),
                ("unknown patient", "GET", "/v1/patients/\(UUID().uuidString)", token, "care", nil, 404, "care.not_found"),
                ("search without criteria", "GET", "/v1/patients?last_name=A", token, "care", nil, 400, "request.invalid_query"),
                ("bad episode state", "GET", "/v1/episodes?state=maybe", token, "care", nil, 400, "request.invalid_query"),
            ]
            for (name, method, path, caseToken, purpose, body, status, code) in cases {
                let reply = try await harness.request(method, path, token: caseToken, purpose: purpose, body: body)
                #expect(reply.status == status, "\(name): \(reply.status) \(reply.text.prefix(200))")
                #expect(reply.errorCode == code, "\(name): \(reply.text.prefix(200))")
                #expect(!reply.text.contains("SELECT") && !reply.text.contains("care.patients ") && !reply.text.contains("Martin"), "\(name) leaks nothing")
                let events = try await harness.events(requestID: try #require(reply.requestID))
                #expect(events.count == 1, "\(name): the attempt itself is journaled")
                #expect(try events.first?.string("reason") == code, "\(name)")
            }
            #expect(try await harness.careRowCounts() == before, "nothing was written to the care record")
        }
    }

    @Test("Quotes and non-Latin scripts in names are stored and found exactly")
    func unicodeNames() async throws {
        try await CareHarness.with("unicode") { harness in
            let token = try await harness.login("agent.sau")
            for (last, first) in [("O'Brien", "Seán"), ("N’Diaye", "Aïssatou"), ("Müller-Lüdenscheidt", "Zoë"), ("李", "小龍"), ("Łukasiewicz", "Jan")] {
                let id = try await harness.createPatient(token, lastName: last, firstName: first)
                let read = try await harness.request("GET", "/v1/patients/\(id)", token: token)
                #expect(read.object["last_name"] as? String == last)
                #expect(read.object["first_name"] as? String == first)
                let query = "last_name=\(last.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)&first_name=\(first.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)&birth_date=1990-05-17"
                let found = try await harness.request("GET", "/v1/patients?\(query)", token: token)
                #expect(found.array.map { $0["id"] as? String } == [id], "\(last) found by exact search")
            }
        }
    }
}
