import Foundation
import Journal
import Store
import Testing
import TestSupport

@Suite("Journal intake")
struct IntakeTests {
    func event(_ index: Int) -> AccessEvent {
        var event = AccessEvent(
            occurredAt: Date(timeIntervalSince1970: 1_795_000_000.123456 + Double(index)), source: "osmose-care", requestID: "request-\(index)",
            action: .read, objectType: "patient", result: index % 3 == 0 ? .denied : .success)
        // Fixed ids, the same on every run.
        var generator = SeededGenerator(seed: UInt64(index))
        event.actorUserID = UUID.random(using: &generator)
        event.actorUsername = "agent.\(index)"
        event.actorRole = "agent"
        event.actorTeam = "sau"
        event.patientID = index % 2 == 0 ? UUID.random(using: &generator) : nil
        event.purpose = .care
        event.reason = index % 3 == 0 ? "care.forbidden" : nil
        event.clientIP = index % 2 == 0 ? "127.0.0.1" : "2001:db8::1"
        event.userAgent = "tab\there, newline\nthere, backslash \\ and quote ' \" — ünïcode"
        return event
    }

    @Test("A group written with one COPY lands exactly as one-by-one inserts would, special characters included, control characters replaced")
    func groupEqualsSingles() async throws {
        try await TestDatabase.with("intake") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await migrate(connection)
            let events = (0..<20).map(event)
            try await connection.transaction { connection in try connection.record(Array(events.prefix(10))) }
            try await connection.transaction { connection in for event in events.suffix(10) { try connection.record(event) } }
            let rows = try await connection.query(
                "SELECT request_id, occurred_at, actor_user_id::text AS actor, patient_id::text AS patient, client_ip::text AS ip, user_agent, result, reason FROM journal.intake ORDER BY id"
            ).rows
            #expect(rows.count == 20)
            for (row, event) in zip(rows, events) {
                #expect(try row.string("request_id") == event.requestID)
                #expect(abs(try row.date("occurred_at").timeIntervalSince(event.occurredAt)) < 0.000_001)
                #expect(try row.string("actor") == event.actorUserID!.uuidString.lowercased())
                #expect(try row.optionalString("patient") == event.patientID?.uuidString.lowercased())
                #expect(try row.string("ip").hasPrefix(event.clientIP!))
                // Tab and newline are recorded replaced (JournalText); backslash, quotes and non-ASCII as sent.
                #expect(try row.string("user_agent") == "tab\u{FFFD}here, newline\u{FFFD}there, backslash \\ and quote ' \" — ünïcode")
                #expect(try row.string("result") == event.result.rawValue)
                #expect(try row.optionalString("reason") == event.reason)
            }
            await connection.close()
        }
    }

    @Test("A group with one invalid event is refused whole")
    func groupIsAtomic() async throws {
        try await TestDatabase.with("intakeatomic") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await migrate(connection)
            var events = (0..<5).map(event)
            events[3].objectType = "Not A Valid Type!"
            let group = events
            let error = await #expect(throws: StoreError.self) { try await connection.transaction { connection in try connection.record(group) } }
            #expect(error?.sqlState == "23514")
            #expect(try await connection.query("SELECT count(*) AS n FROM journal.intake").rows[0].int("n") == 0)
            await connection.close()
        }
    }
}
