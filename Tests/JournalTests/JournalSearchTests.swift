import Foundation
import Journal
import Store
import Testing
import TestSupport

@Suite("Journal search in PostgreSQL")
struct JournalSearchTests {
    static let firstPatient = UUID()
    static let secondPatient = UUID()
    static let camille = UUID()
    static let dominique = UUID()

    static func day(_ number: Int, hour: Int = 10) -> Date {
        Date(timeIntervalSince1970: 1_767_225_600 + Double(number - 1) * 86_400 + Double(hour) * 3_600)  // 2026-01-<number>
    }

    /// Four events, sequenced in this order (0…3).
    static var events: [AccessEvent] {
        func event(
            _ day: Int, patient: UUID?, user: UUID?, team: String?, action: AccessAction, purpose: AccessPurpose, result: AccessResult
        ) -> AccessEvent {
            var event = AccessEvent(
                occurredAt: Self.day(day), source: "osmose-care", requestID: "search-\(day)", action: action, objectType: "patient", result: result)
            event.patientID = patient
            event.actorUserID = user
            event.actorRole = "agent"
            event.actorTeam = team
            event.purpose = purpose
            return event
        }
        return [
            event(10, patient: firstPatient, user: camille, team: "sau", action: .read, purpose: .care, result: .success),
            event(11, patient: firstPatient, user: dominique, team: "epl", action: .update, purpose: .coordination, result: .denied),
            event(12, patient: secondPatient, user: camille, team: "sau", action: .read, purpose: .care, result: .success),
            event(13, patient: nil, user: nil, team: nil, action: .userAdmin, purpose: .administration, result: .error),
        ]
    }

    /// Runs `body` with a journal holding ``events``, sequenced; dropped on every path.
    static func journal<Result>(_ purpose: String, _ body: (JournalFixture) async throws -> Result) async throws -> Result {
        try await JournalFixture.with(purpose) { fixture in
            let events = Self.events
            try await fixture.admin.transaction { connection in try connection.record(events) }
            _ = try await fixture.drain(try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) })
            return try await body(fixture)
        }
    }

    func sequences(_ search: JournalSearch, _ fixture: JournalFixture) async throws -> [UInt64] {
        try await fixture.admin.perform { try search.entries(on: $0) }.map(\.sequence)
    }

    @Test("Each filter and their combinations find exactly the matching entries, oldest first; the limit keeps the newest")
    func filters() async throws {
        try await Self.journal("search") { fixture in
            #expect(try await fixture.admin.perform { try JournalDatabase.treeSize(on: $0) } == 4)
            #expect(try await sequences(JournalSearch(), fixture) == [0, 1, 2, 3])
            #expect(try await sequences(JournalSearch(patientID: Self.firstPatient), fixture) == [0, 1])
            #expect(try await sequences(JournalSearch(patientID: Self.firstPatient, actorTeam: "sau"), fixture) == [0])
            #expect(try await sequences(JournalSearch(actorUserID: Self.camille), fixture) == [0, 2])
            #expect(try await sequences(JournalSearch(action: .read), fixture) == [0, 2])
            #expect(try await sequences(JournalSearch(purpose: .coordination, result: .denied), fixture) == [1])
            #expect(try await sequences(JournalSearch(result: .error), fixture) == [3])
            #expect(try await sequences(JournalSearch(actorUserID: Self.camille, occurredFrom: Self.day(11)), fixture) == [2])
            #expect(try await sequences(JournalSearch(occurredBefore: Self.day(11)), fixture) == [0])
            #expect(try await sequences(JournalSearch(occurredFrom: Self.day(11), occurredBefore: Self.day(13)), fixture) == [1, 2])
            #expect(try await sequences(JournalSearch(occurredFrom: Self.day(11, hour: 10)), fixture) == [1, 2, 3], "the start is included")
            #expect(try await sequences(JournalSearch(patientID: UUID()), fixture).isEmpty)
            #expect(try await sequences(JournalSearch(limit: 2), fixture) == [2, 3])
            let found = try await fixture.admin.perform { try JournalSearch(patientID: Self.secondPatient).entries(on: $0) }
            #expect(found.map(\.patientID) == [Self.secondPatient.uuidString.lowercased()])
        }
    }

    @Test("A search column changed after the fact cannot make a search return an entry its hashed bytes do not match")
    func hitsAreCheckedAgainstTheirBytes() async throws {
        try await Self.journal("searchtamper") { fixture in
            try await fixture.admin.execute("SET session_replication_role = replica")
            try await fixture.admin.query("UPDATE journal.entries SET patient_id = $1::uuid, actor_team = 'sau' WHERE seq = 1", [Self.secondPatient])
            try await fixture.admin.execute("SET session_replication_role = origin")
            #expect(try await sequences(JournalSearch(patientID: Self.secondPatient), fixture) == [2], "entry 1's bytes name the first patient")
            #expect(try await sequences(JournalSearch(actorTeam: "sau"), fixture) == [0, 2])
            // A page reads the same candidates and names the mismatched one instead of showing it.
            let page = try await fixture.admin.perform { try JournalSearch(patientID: Self.secondPatient).page(0..<50, on: $0) }
            #expect(page.candidateCount == 2 && page.entries.map(\.sequence) == [2] && page.mismatched == [1])
        }
    }

    @Test("Pages of a search hold the newest entries first, a window at a time, as the whole search holds them")
    func pages() async throws {
        try await Self.journal("searchpages") { fixture in
            // 57 more entries for the first patient (sequences 4…62), 2 for the second.
            let more = (0..<59).map { index -> AccessEvent in
                var event = AccessEvent(
                    occurredAt: Self.day(14).addingTimeInterval(Double(index)), source: "osmose-care", requestID: "page-\(index)", action: .read,
                    objectType: "patient", result: .success)
                event.patientID = index % 29 == 5 ? Self.secondPatient : Self.firstPatient
                return event
            }
            try await fixture.admin.transaction { connection in try connection.record(more) }
            _ = try await fixture.drain(try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) })
            for search in [JournalSearch(patientID: Self.firstPatient), JournalSearch(patientID: Self.firstPatient, limit: 40), JournalSearch(limit: 25)] {
                let whole = Array(try await sequences(search, fixture).reversed())
                for window in [0..<10, 10..<20, 50..<60, 55..<70, 100..<150, 0..<1000] {
                    let page = try await fixture.admin.perform { try search.page(window, on: $0) }
                    #expect(page.candidateCount == whole.count, "\(search) \(window)")
                    #expect(page.entries.map(\.sequence) == Array(whole[min(window.lowerBound, whole.count)..<min(window.upperBound, whole.count)]), "\(search) \(window)")
                    #expect(page.mismatched.isEmpty)
                }
            }
            #expect(try await sequences(JournalSearch(patientID: Self.firstPatient), fixture).count == 59)
        }
    }

    @Test("matches checks every filter against the decoded entry")
    func matches() {
        let occurredAt = Int64(Self.day(11).timeIntervalSince1970) * 1_000_000
        let entry = JournalEntry(
            sequence: 7, occurredAt: occurredAt, sequencedAt: occurredAt + 1, source: "osmose-care", requestID: "search-11",
            actorUserID: Self.dominique.uuidString.lowercased(), actorRole: "agent", actorTeam: "epl", action: "update", objectType: "patient",
            patientID: Self.firstPatient.uuidString.lowercased(), purpose: "coordination", result: "denied")
        #expect(JournalSearch(patientID: Self.firstPatient, actorUserID: Self.dominique, actorTeam: "epl").matches(entry))
        #expect(JournalSearch(action: .update, purpose: .coordination, result: .denied).matches(entry))
        #expect(JournalSearch(occurredFrom: Self.day(11), occurredBefore: Self.day(11, hour: 11)).matches(entry))
        #expect(!JournalSearch(patientID: Self.secondPatient).matches(entry))
        #expect(!JournalSearch(actorUserID: Self.camille).matches(entry))
        #expect(!JournalSearch(actorTeam: "sau").matches(entry))
        #expect(!JournalSearch(action: .read).matches(entry))
        #expect(!JournalSearch(purpose: .care).matches(entry))
        #expect(!JournalSearch(result: .success).matches(entry))
        #expect(!JournalSearch(occurredFrom: Self.day(11, hour: 11)).matches(entry))
        #expect(!JournalSearch(occurredBefore: Self.day(11)).matches(entry), "the end is excluded")
    }
}
