import Foundation
import Testing
import TestSupport

@Suite("Access matrix: every endpoint × role × team, one access event each")
struct AccessMatrixTests {
    /// One endpoint under test: how to make a fresh target, the request, who may call it.
    struct Case: Sendable {
        let name: String
        let method: String
        let action: String
        /// Builds the path and body against fresh fixtures owned by the emergency team (sau).
        let prepare: @Sendable (CareHarness, String) async throws -> (path: String, body: String?)
        /// Users allowed (the rest must get 403).
        let allowed: Set<String>
        let purpose: String
        let successStatus: Int
    }

    static let careUsers: Set<String> = ["agent.sau", "manager.sau", "agent.epl", "manager.epl"]
    static let sauUsers: Set<String> = ["agent.sau", "manager.sau"]

    static let cases: [Case] = [
        Case(name: "search patients", method: "GET", action: "read", prepare: { _, _ in ("/v1/patients?last_name=Martin&first_name=Lea&birth_date=1990-05-17", nil) },
             allowed: careUsers, purpose: "care", successStatus: 200),
        Case(name: "create patient", method: "POST", action: "create",
             prepare: { _, _ in ("/v1/patients", #"{"last_name":"Petit","first_name":"Jules","birth_date":"2001-01-02","sex":"male"}"#) },
             allowed: careUsers, purpose: "care", successStatus: 201),
        Case(name: "read patient", method: "GET", action: "read", prepare: { h, t in ("/v1/patients/\(try await h.createPatient(t))", nil) },
             allowed: careUsers, purpose: "care", successStatus: 200),
        Case(name: "update patient", method: "PATCH", action: "update",
             prepare: { h, t in ("/v1/patients/\(try await h.createPatient(t))", #"{"first_name":"Léana"}"#) },
             allowed: careUsers, purpose: "coordination", successStatus: 200),
        Case(name: "patient history", method: "GET", action: "read", prepare: { h, t in ("/v1/patients/\(try await h.createPatient(t))/history", nil) },
             allowed: careUsers, purpose: "care", successStatus: 200),
        Case(name: "list episodes", method: "GET", action: "read", prepare: { _, _ in ("/v1/episodes?state=all", nil) },
             allowed: careUsers, purpose: "care", successStatus: 200),
        Case(name: "open episode", method: "POST", action: "create",
             prepare: { h, t in ("/v1/episodes", #"{"patient_id":"\#(try await h.createPatient(t))","arrival_mode":"walk-in","reason":"Malaise"}"#) },
             allowed: careUsers, purpose: "care", successStatus: 201),
        Case(name: "read episode", method: "GET", action: "read",
             prepare: { h, t in ("/v1/episodes/\(try await h.createEpisode(t, patient: try await h.createPatient(t)))", nil) },
             allowed: sauUsers, purpose: "care", successStatus: 200),
        Case(name: "update episode", method: "PATCH", action: "update",
             prepare: { h, t in ("/v1/episodes/\(try await h.createEpisode(t, patient: try await h.createPatient(t)))", #"{"box_status":"assigned","box_number":"B4"}"#) },
             allowed: sauUsers, purpose: "care", successStatus: 200),
        Case(name: "close episode", method: "POST", action: "update",
             prepare: { h, t in ("/v1/episodes/\(try await h.createEpisode(t, patient: try await h.createPatient(t)))/close", nil) },
             allowed: ["manager.sau"], purpose: "care", successStatus: 200),
        Case(name: "episode history", method: "GET", action: "read",
             prepare: { h, t in ("/v1/episodes/\(try await h.createEpisode(t, patient: try await h.createPatient(t)))/history", nil) },
             allowed: sauUsers, purpose: "care", successStatus: 200),
        Case(name: "export episode", method: "GET", action: "export",
             prepare: { h, t in ("/v1/episodes/\(try await h.createEpisode(t, patient: try await h.createPatient(t)))/export?format=html", nil) },
             allowed: ["manager.sau"], purpose: "care", successStatus: 200),
        Case(name: "list transmissions", method: "GET", action: "read",
             prepare: { h, t in ("/v1/episodes/\(try await h.createEpisode(t, patient: try await h.createPatient(t)))/transmissions", nil) },
             allowed: sauUsers, purpose: "coordination", successStatus: 200),
        Case(name: "write transmission", method: "POST", action: "create",
             prepare: { h, t in ("/v1/episodes/\(try await h.createEpisode(t, patient: try await h.createPatient(t)))/transmissions", #"{"body":"Patient calme","addressed_team":"epl"}"#) },
             allowed: sauUsers, purpose: "care", successStatus: 201),
        Case(name: "retract transmission", method: "DELETE", action: "delete",
             prepare: { h, t in ("/v1/transmissions/\(try await h.createTransmission(t, episode: try await h.createEpisode(t, patient: try await h.createPatient(t))))", nil) },
             allowed: ["manager.sau"], purpose: "care", successStatus: 200),
        Case(name: "list users", method: "GET", action: "read", prepare: { _, _ in ("/v1/users", nil) },
             allowed: ["admin"], purpose: "administration", successStatus: 200),
    ]

    @Test("Allowed and denied per role and team, with exactly one event of the right action, purpose and result")
    func matrix() async throws {
        try await CareHarness.with("matrix") { harness in
            var tokens: [String: String] = [:]
            for user in CareHarness.users { tokens[user.name] = try await harness.login(user.name) }
            let fixtureOwner = tokens["agent.sau"]!
            for testCase in Self.cases {
                for user in CareHarness.users {
                    let (path, body) = try await testCase.prepare(harness, fixtureOwner)
                    let before = try await harness.careRowCounts()
                    let reply = try await harness.request(testCase.method, path, token: tokens[user.name], purpose: testCase.purpose, body: body)
                    let allowed = testCase.allowed.contains(user.name)
                    let label = "\(testCase.name) as \(user.name)"
                    #expect(reply.status == (allowed ? testCase.successStatus : 403), "\(label): \(reply.status) \(reply.text)")
                    if !allowed {
                        #expect(reply.errorCode == "care.forbidden", "\(label)")
                        #expect(try await harness.careRowCounts() == before, "\(label) wrote nothing")
                    }
                    let requestID = try #require(reply.requestID, "\(label) has a request id")
                    let events = try await harness.events(requestID: requestID)
                    #expect(events.count == 1, "\(label): exactly one event")
                    if let event = events.first {
                        #expect(try event.string("action") == testCase.action, "\(label)")
                        #expect(try event.optionalString("purpose") == testCase.purpose, "\(label)")
                        #expect(try event.string("result") == (allowed ? "success" : "denied"), "\(label)")
                        #expect(try event.optionalString("actor_username") == user.name, "\(label)")
                        #expect(try event.optionalString("actor_team") == CareHarness.users.first { $0.name == user.name }!.team, "\(label)")
                        #expect(try event.optionalString("client_ip") == "127.0.0.1", "\(label)")
                        if allowed && testCase.name.contains("episode") && !testCase.name.contains("list") {
                            #expect(try !event.isNull("patient_id"), "\(label) names the patient")
                        }
                    }
                }
            }
        }
    }

    @Test("Unmatched routes and methods, method overrides, oversized bodies and malformed HTTP, for every role: the same answer, one event each naming the user and the patient, a request id")
    func unroutedMatrix() async throws {
        try await CareHarness.with("matrixunrouted") { harness in
            var tokens: [String: String] = [:]
            for user in CareHarness.users { tokens[user.name] = try await harness.login(user.name) }
            let owner = tokens["agent.sau"]!
            let patient = try await harness.createPatient(owner).lowercased()
            let episode = try await harness.createEpisode(owner, patient: patient).lowercased()
            let big = Array(String(repeating: "x", count: 70_000).utf8)
            let cases: [(name: String, request: @Sendable ([(String, [UInt8])]) -> [UInt8], status: Int, code: String)] = [
                ("DELETE /v1/patients/{id}", { RawHTTP.request("DELETE", "/v1/patients/\(patient)", headers: $0) }, 405, "request.method_not_allowed"),
                ("PUT /v1/episodes/{id}", { RawHTTP.request("PUT", "/v1/episodes/\(episode)", headers: $0, body: Array("{}".utf8)) }, 405, "request.method_not_allowed"),
                ("OPTIONS", { RawHTTP.request("OPTIONS", "/v1/episodes/\(episode)", headers: $0) }, 405, "request.method_not_allowed"),
                ("TRACE", { RawHTTP.request("TRACE", "/v1/patients/\(patient)/history", headers: $0) }, 405, "request.method_not_allowed"),
                ("method override", { RawHTTP.request("GET", "/v1/episodes/\(episode)", headers: $0 + [("X-Method-Override", Array("DELETE".utf8))]) }, 400, "request.method_override"),
                ("oversized body", { RawHTTP.request("PATCH", "/v1/patients/\(patient)", headers: $0 + [("Content-Type", Array("application/json".utf8))], body: big) }, 413, "request.too_large"),
                ("malformed HTTP", { Array("GET /v1/patients/\(patient) HTTP/1.1\r\nHost: x\r\n".utf8) + $0.flatMap { Array("\($0.0): ".utf8) + $0.1 + Array("\r\n".utf8) } + Array("Bad header line\r\n\r\n".utf8) }, 400, "request.malformed_http"),
            ]
            for testCase in cases {
                for user in CareHarness.users {
                    let headers: [(String, [UInt8])] = [("Authorization", Array("Bearer \(tokens[user.name]!)".utf8)), ("Osmose-Purpose", Array("care".utf8))]
                    let reply = try await RawHTTP.send(testCase.request(headers), port: harness.port)
                    let label = "\(testCase.name) as \(user.name)"
                    #expect(reply.status == testCase.status, "\(label): \(reply.status) \(reply.text)")
                    #expect(reply.errorCode == testCase.code, "\(label)")
                    let requestID = try #require(reply.requestID, "\(label) has a request id")
                    let events = try await harness.events(requestID: requestID)
                    #expect(events.count == 1, "\(label): exactly one event")
                    #expect(try events.first?.optionalString("actor_username") == user.name, "\(label)")
                    #expect(try events.first?.optionalString("patient_id") == patient, "\(label): the patient the path names")
                    #expect(try events.first?.optionalString("reason") == testCase.code, "\(label)")
                }
            }
        }
    }

    @Test("A transmission addressed to another team shares the episode with it, and only then")
    func sharing() async throws {
        try await CareHarness.with("sharing") { harness in
            let sau = try await harness.login("agent.sau")
            let epl = try await harness.login("agent.epl")
            let episode = try await harness.createEpisode(sau, patient: try await harness.createPatient(sau))
            #expect(try await harness.request("GET", "/v1/episodes/\(episode)", token: epl).status == 403)
            #expect(try await harness.request("GET", "/v1/episodes", token: epl).array.isEmpty)
            _ = try await harness.createTransmission(sau, episode: episode, body: "Avis psychiatrique demandé", addressedTo: "epl")
            let shared = try await harness.request("GET", "/v1/episodes/\(episode)", token: epl)
            #expect(shared.status == 200)
            #expect(shared.object["shared_with"] as? [String] == ["epl"])
            let listed = try await harness.request("GET", "/v1/episodes/\(episode)/transmissions", token: epl, purpose: "coordination")
            #expect(listed.array.first?["body"] as? String == "Avis psychiatrique demandé")
            #expect(try await harness.request("GET", "/v1/episodes?team=epl", token: epl).array.count == 1)
            let reply = try await harness.createTransmission(epl, episode: episode, body: "Entretien réalisé, pas de risque immédiat")
            #expect(!reply.isEmpty)
        }
    }
}
