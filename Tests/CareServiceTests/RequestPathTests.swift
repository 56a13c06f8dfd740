import Foundation
import Journal
import Testing
import TestSupport

@Suite("The request path: record ids in paths, events bounded as the intake counts")
struct RequestPathTests {
    @Test("Every route naming a record refuses a malformed id with 400 and one event, after the checks that come first")
    func malformedIDs() async throws {
        try await CareHarness.with("pathids") { harness in
            let manager = try await harness.login("manager.sau")
            let routes: [(method: String, path: String, body: String?)] = [
                ("GET", "/v1/patients/%@", nil), ("PATCH", "/v1/patients/%@", #"{"first_name":"Jo"}"#), ("GET", "/v1/patients/%@/history", nil),
                ("GET", "/v1/episodes/%@", nil), ("PATCH", "/v1/episodes/%@", #"{"worrying":false}"#), ("POST", "/v1/episodes/%@/close", nil),
                ("GET", "/v1/episodes/%@/history", nil), ("GET", "/v1/episodes/%@/export", nil), ("GET", "/v1/episodes/%@/transmissions", nil),
                ("POST", "/v1/episodes/%@/transmissions", #"{"body":"x"}"#), ("DELETE", "/v1/transmissions/%@", nil),
            ]
            let before = try await harness.careRowCounts()
            for route in routes {
                let path = route.path.replacingOccurrences(of: "%@", with: "not-a-uuid")
                let reply = try await harness.request(route.method, path, token: manager, body: route.body)
                #expect(reply.status == 400, "\(route.method) \(path): \(reply.text)")
                #expect(reply.errorCode == "request.invalid_field", "\(route.method) \(path)")
                let events = try await harness.events(requestID: try #require(reply.requestID))
                #expect(events.count == 1, "\(route.method) \(path): one event")
                #expect(try events.first?.optionalString("actor_username") == "manager.sau", "\(route.method) \(path): after authentication")
                #expect(try events.first?.string("result") == "error", "\(route.method) \(path)")
                let anonymous = try await harness.request(route.method, path, token: nil, body: route.body)
                #expect(anonymous.errorCode == "auth.required", "\(route.method) \(path): the token is checked first")
            }
            #expect(try await harness.careRowCounts() == before)
        }
    }

    @Test("An upper-case id names the same record and is journaled in lower case; the nil UUID names none")
    func idForms() async throws {
        try await CareHarness.with("idforms") { harness in
            let token = try await harness.login("agent.sau")
            let patient = try await harness.createPatient(token)
            let upper = try await harness.request("GET", "/v1/patients/\(patient.uppercased())", token: token)
            #expect(upper.status == 200)
            #expect((upper.object["id"] as? String)?.lowercased() == patient.lowercased())
            let event = try #require(try await harness.events(requestID: upper.requestID ?? "").first)
            #expect(try event.optionalString("object_id") == patient.lowercased())
            #expect(try event.optionalString("patient_id") == patient.lowercased())

            let none = try await harness.request("GET", "/v1/patients/00000000-0000-0000-0000-000000000000", token: token)
            #expect(none.status == 404)
            #expect(none.errorCode == "care.not_found")
            let refused = try await harness.events(requestID: try #require(none.requestID))
            #expect(refused.count == 1)
            #expect(try refused.first?.optionalString("object_id") == "00000000-0000-0000-0000-000000000000")
        }
    }

    @Test("A username of one grapheme and hundreds of code points is recorded as a keyed hash; such a user agent is recorded cut; neither is refused by the intake")
    func boundedTexts() async throws {
        try await CareHarness.with("boundedtexts") { harness in
            let combining = "e" + String(repeating: "\u{301}", count: 600)
            let login = try await harness.request(
                "POST", "/v1/auth/login", token: nil, purpose: nil, body: #"{"username":"\#(combining)","password":"whatever at all"}"#)
            #expect(login.status == 401, "\(login.text)")
            #expect(login.errorCode == "auth.invalid_credentials")
            let loginEvent = try #require(try await harness.events(requestID: login.requestID ?? "").first)
            let recorded = try #require(try loginEvent.optionalString("actor_username"))
            #expect(recorded.range(of: #"^unknown:[0-9]+:[0-9a-f]{32}$"#, options: .regularExpression) != nil, "\(recorded)")

            let token = try await harness.login("agent.sau")
            let read = try await harness.request("GET", "/v1/episodes", token: token, headers: ["User-Agent": combining])
            #expect(read.status == 200, "\(read.text)")
            let readEvent = try #require(try await harness.events(requestID: read.requestID ?? "").first)
            #expect(try readEvent.optionalString("user_agent")?.unicodeScalars.count == JournalText.userAgentLimit)
            #expect(try readEvent.optionalString("user_agent")?.unicodeScalars.last == JournalText.cutMarker)
        }
    }
}
