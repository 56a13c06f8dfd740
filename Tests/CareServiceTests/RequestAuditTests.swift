import CareRecords
import CareService
import Foundation
import Journal
import Testing

@Suite("The request audit: one value fills every care event")
struct RequestAuditTests {
    static let principal = Principal(
        userID: UUID(uuidString: "6f1f3c1e-8f1a-4c55-9d0e-2b7f5e0a1c11")!, username: "agent.sau", role: .agent,
        teamID: UUID(uuidString: "0b3a7d52-1e4f-4a8b-a9d3-5c6e7f801234")!, teamCode: "sau")

    func audit(userAgent: String? = "curl/8.0") -> RequestAudit {
        RequestAudit(requestID: "req-1", action: .read, objectType: "episode", clientIP: "192.0.2.7", userAgent: userAgent)
    }

    @Test("Before anything is learned, the event names only the request")
    func bareRequest() {
        let event = audit().event(.refused(CareError(.authenticationRequired, "no token")))
        #expect(event.source == "osmose-care")
        #expect(event.requestID == "req-1")
        #expect(event.action == .read)
        #expect(event.objectType == "episode")
        #expect(event.clientIP == "192.0.2.7")
        #expect(event.userAgent == "curl/8.0")
        #expect(event.result == .denied)
        #expect(event.reason == "auth.required")
        #expect(event.actorUserID == nil && event.actorUsername == nil && event.actorRole == nil && event.actorTeam == nil)
        #expect(event.purpose == nil && event.objectID == nil && event.patientID == nil)
    }

    @Test("What the request learned fills the event: principal, purpose, object (lower-case) and patient")
    func learned() {
        let audit = audit()
        let object = UUID(uuidString: "A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF")!
        let patient = UUID()
        audit.identify(Self.principal)
        audit.declare(.coordination)
        audit.touched(object: object)
        audit.touched(patient: patient)
        let event = audit.event(.success)
        #expect(event.result == .success)
        #expect(event.reason == nil)
        #expect(event.actorUserID == Self.principal.userID)
        #expect(event.actorUsername == "agent.sau")
        #expect(event.actorRole == "agent")
        #expect(event.actorTeam == "sau")
        #expect(event.purpose == .coordination)
        #expect(event.objectID == "a1b2c3d4-e5f6-4711-8899-aabbccddeeff", "touching the patient later kept the object")
        #expect(event.patientID == patient)
    }

    @Test("A refusal is denied for 401 and 403, an error otherwise; its reason is the code unless the journal is told why")
    func outcomes() {
        let audit = audit()
        #expect(audit.event(.refused(CareError(.forbidden, "no"))).result == .denied)
        #expect(audit.event(.refused(CareError(.sessionExpired, "no"))).result == .denied)
        let notFound = audit.event(.refused(CareError(.notFound, "no")))
        #expect(notFound.result == .error)
        #expect(notFound.reason == "care.not_found")
        #expect(audit.event(.refused(CareError(.journalUnavailable, "no"))).result == .error)
        let disabled = audit.event(.refused(CareError(.invalidCredentials, "no"), journalReason: "auth.account_disabled"))
        #expect(disabled.result == .denied)
        #expect(disabled.reason == "auth.account_disabled")
    }

    @Test("A failed login names the username tried; an identified principal takes precedence")
    func attemptedUsername() {
        let unknown = audit()
        unknown.attempted(username: "nobody")
        #expect(unknown.event(.success).actorUsername == "nobody")
        #expect(unknown.event(.success).actorUserID == nil)
        let known = audit()
        known.attempted(username: "typed-name")
        known.identify(Self.principal)
        #expect(known.event(.success).actorUsername == "agent.sau")
    }

    @Test("A successful listing has one event per record, each naming its patient; a refused one, one event; an empty one, one event")
    func listings() {
        let audit = audit()
        let records = [(object: UUID(), patient: UUID()), (object: UUID(), patient: UUID())]
        audit.listed(records)
        let events = audit.events(.success)
        #expect(events.map(\.patientID) == records.map(\.patient))
        #expect(events.map(\.objectID) == records.map { $0.object.uuidString.lowercased() })
        #expect(Set(events.map(\.requestID)) == ["req-1"])
        #expect(audit.events(.refused(CareError(.journalUnavailable, "no"))).count == 1)
        let empty = self.audit()
        empty.listed([])
        #expect(empty.events(.success).count == 1)
    }

    @Test("The record a path names is the event's object from the start; a patient's path names the patient too")
    func pathRecords() {
        let patient = UUID()
        let patientPath = RequestAudit(requestID: "r", action: .read, objectType: "patient", clientIP: nil, userAgent: nil, pathRecord: .patient(patient))
        #expect(patientPath.event(.refused(CareError(.forbidden, "no"))).patientID == patient)
        #expect(patientPath.event(.success).objectID == patient.uuidString.lowercased())
        let episode = UUID()
        let episodePath = RequestAudit(requestID: "r", action: .read, objectType: "episode", clientIP: nil, userAgent: nil, pathRecord: .episode(episode))
        #expect(episodePath.event(.success).objectID == episode.uuidString.lowercased())
        #expect(episodePath.event(.success).patientID == nil, "an episode's patient is looked up, not guessed")
        let route = RequestAudit(requestID: "r", action: .delete, objectType: "route", clientIP: nil, userAgent: nil, pathRecord: .patient(patient), object: "DELETE /v1/patients/x")
        #expect(route.event(.success).objectID == "DELETE /v1/patients/x")
    }

    @Test("Notes follow the outcome's code in the reason; a throttled login is denied")
    func notes() {
        let audit = RequestAudit(requestID: "r", action: .read, objectType: "episode", clientIP: "127.0.0.1", userAgent: nil, notes: [.forwardedForInvalid])
        #expect(audit.event(.success).reason == "x-forwarded-for-invalid")
        #expect(audit.event(.refused(CareError(.forbidden, "no"))).reason == "care.forbidden x-forwarded-for-invalid")
        #expect(self.audit().event(.refused(CareError(.throttled, "no"))).result == .denied)
    }

    @Test("Texts are bounded in code points, as the intake's CHECKs count them, not in graphemes")
    func boundedInCodePoints() {
        let combining = "e" + String(repeating: "\u{301}", count: 700)
        #expect(combining.count == 1, "one grapheme")
        let audit = audit(userAgent: combining)
        audit.attempted(username: combining)
        let event = audit.event(.refused(CareError(.invalidCredentials, "no"), journalReason: String(repeating: "r", count: 300)))
        #expect(event.userAgent?.unicodeScalars.count == JournalText.userAgentLimit)
        #expect(event.actorUsername?.unicodeScalars.count == JournalText.usernameLimit)
        #expect(event.reason?.unicodeScalars.count == JournalText.reasonLimit)
        #expect(audit.event(.success).userAgent?.unicodeScalars.first == "e")
        #expect(audit.event(.success).userAgent?.unicodeScalars.last == JournalText.cutMarker)
        let control = self.audit(userAgent: "curl\u{0}/8\n\u{202E}")
        #expect(control.event(.success).userAgent == "curl\u{FFFD}/8\u{FFFD}\u{FFFD}")
    }
}

@Suite("Record ids in paths: parsed once, refused clearly when malformed")
struct RecordIDTests {
    @Test("Malformed ids are refused with request.invalid_field", arguments: [
        "", "12345", "not-a-uuid", "3f2504e0-4f89-11d3-9a0c-0305e82c330g", "3f2504e0-4f89-11d3-9a0c-0305e82c3301x",
        "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}", "3f2504e04f8911d39a0c0305e82c3301", " 3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    ])
    func malformed(text: String) {
        #expect(throws: CareError(.invalidField, "")) { try RecordID(parsing: text) }
    }

    @Test("Upper and lower case name the same record")
    func anyCase() throws {
        let upper = try RecordID(parsing: "3F2504E0-4F89-11D3-9A0C-0305E82C3301")
        let lower = try RecordID(parsing: "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
        #expect(upper == lower)
        #expect(upper.uuid.uuidString.lowercased() == "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
    }

    @Test("The nil UUID is well formed: it names no record rather than a malformed one")
    func nilUUID() throws {
        let parsed = try RecordID(parsing: "00000000-0000-0000-0000-000000000000")
        #expect(parsed.uuid == UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
    }
}
