import Foundation
import Store
import SubjectRequests
import Testing
import TestSupport

/// The register's paged listing: the same requests, in the same order, as the
/// whole listing, a page at a time, with the counts over every page.
@Suite("The register, a page at a time, against PostgreSQL")
struct RegisterPageTests {
    @Test("120 requests in pages of 50: three pages, in the whole listing's order, under every filter, with the counts of every page")
    func pagesMatchTheWholeListing() async throws {
        try await DSARFixture.with("dsar_pages") { fixture in
            let patient = try await fixture.createPatient("Martin", "Lou", "1980-02-03")
            let register = fixture.register()
            var generator = TestSeed.generator(test: "RegisterPageTests.pagesMatchTheWholeListing")
            let kinds = RequestKind.allCases
            // Received 0 to 40 days ago (some past their month), a quarter withdrawn.
            let ages = (0..<120).map { _ in Double(Int.random(in: 0...40, using: &generator)) }
            let opened = try await fixture.dsar.transaction { connection -> [Int64] in
                try (0..<120).map { index in
                    let received = Date().addingTimeInterval(-ages[index] * 86_400 - 3600)
                    let kind = kinds[index % kinds.count]
                    let record = try register.open(
                        NewRequest(kind: kind, subject: .patientID(patient.id), capacity: .patient, requesterName: "Lou Martin", receivedAt: received, acknowledgeLate: true),
                        on: connection)
                    if index % 4 == 3 { _ = try register.close(number: record.number, outcome: .withdrawn, on: connection) }
                    return record.number
                }
            }
            #expect(opened.count == 120)
            let warn = 5
            let filters: [(RequestRegister.RegisterFilter, [RequestSummary])] = try await fixture.dsar.transaction { connection in
                let every = try register.list(openOnly: false, dueWithin: nil, on: connection)
                let open = try register.list(openOnly: true, dueWithin: nil, on: connection)
                return [
                    (.init(status: .all), every),
                    (.init(status: .open), open),
                    (.init(status: .closed), every.filter { $0.status == "closed" }),
                    (.init(status: .all, kind: .erasure), every.filter { $0.kind == .erasure }),
                    (.init(status: .open, kind: .access), open.filter { $0.kind == .access }),
                    (.init(status: .open, dueWithin: 10), try register.list(openOnly: true, dueWithin: 10, on: connection)),
                    (.init(status: .all, kind: .objection, dueWithin: 20),
                     try register.list(openOnly: true, dueWithin: 20, on: connection).filter { $0.kind == .objection }),
                    (.init(status: .closed, dueWithin: 20), []),
                ]
            }
            #expect(filters[0].1.count == 120 && filters[2].1.count == 30)
            for (filter, whole) in filters {
                var paged: [RequestSummary] = []
                var offset = 0
                var pages = 0
                while true {
                    let from = offset
                    let page = try await fixture.dsar.transaction { connection in
                        try register.page(filter, offset: from, limit: 50, warnDays: warn, on: connection)
                    }
                    #expect(page.total == whole.count, "\(filter)")
                    #expect(page.overdue == whole.filter { ($0.daysLeft ?? 0) < 0 }.count, "\(filter)")
                    #expect(page.dueSoon == whole.filter { ($0.daysLeft ?? -1) >= 0 && ($0.daysLeft ?? Int.max) <= warn }.count, "\(filter)")
                    #expect(page.offset == offset && page.rows.count <= 50)
                    if page.rows.isEmpty { break }
                    pages += 1
                    paged += page.rows
                    offset += 50
                }
                #expect(paged == whole, "\(filter): the pages hold the whole listing, in its order")
                #expect(pages == (whole.count + 49) / 50, "\(filter)")
            }
            // Every request is on one page of 'all': three pages, the oldest on the third.
            let third = try await fixture.dsar.transaction { connection in
                try register.page(.init(status: .all), offset: 100, limit: 50, warnDays: warn, on: connection)
            }
            #expect(third.rows.count == 20 && third.rows.last?.number == opened.min())
        }
    }

    @Test("each request's due day is its earliest deadline in force, however its deadlines are written")
    func dueDayFollowsTheDeadlines() async throws {
        try await DSARFixture.with("dsar_due_day") { fixture in
            let patient = try await fixture.createPatient("Martin", "Lou", "1980-02-03")
            let register = fixture.register()
            let today = CivilDate.on(Date(), in: DSARFixture.timeZone)
            let numbers = try await fixture.dsar.transaction { connection -> [Int64] in
                try (0..<4).map { index in
                    try register.open(
                        NewRequest(
                            kind: index == 3 ? .rectification : .access, subject: .patientID(patient.id), capacity: .patient, requesterName: "Lou Martin",
                            receivedAt: Date().addingTimeInterval(-Double(index) * 86_400 - 3600), acknowledgeLate: true),
                        on: connection
                    ).number
                }
            }
            // Each way a deadline changes: the extension (through the library), and
            // rows inserted, taken out of force, moved and deleted (as an administrator).
            _ = try await fixture.dsar.transaction { connection in
                try register.extend(number: numbers[1], noticeOn: today, reasons: "complexité", on: connection)
            }
            let id = { (number: Int64) in try await fixture.admin.query("SELECT id FROM dsar.requests WHERE number = $1", [number]).rows[0].uuid("id") }
            let second = try await id(numbers[2])
            try await fixture.admin.query(
                "INSERT INTO dsar.deadlines (request_id, rule, due_on, citation) VALUES ($1, 'gdpr-extended', $2::date, 'test')",
                [second, today.adding(days: 3).description])
            try await fixture.admin.query("UPDATE dsar.deadlines SET due_on = $2::date WHERE request_id = $1 AND rule = 'gdpr-extended'", [second, today.adding(days: -2).description])
            let third = try await id(numbers[3])
            try await fixture.admin.query("UPDATE dsar.deadlines SET in_force = false WHERE request_id = $1", [third])
            let first = try await id(numbers[0])
            try await fixture.admin.query(
                "INSERT INTO dsar.deadlines (request_id, rule, due_on, citation) VALUES ($1, 'gdpr-extended', $2::date, 'test')",
                [first, today.adding(days: -9).description])
            try await fixture.admin.query("DELETE FROM dsar.deadlines WHERE request_id = $1 AND rule = 'gdpr-extended'", [first])
            // A deadline moved from one request to another: both days follow.
            try await fixture.admin.query(
                "INSERT INTO dsar.deadlines (request_id, rule, due_on, citation) VALUES ($1, 'gdpr-extended', $2::date, 'test')",
                [first, today.adding(days: -30).description])
            try await fixture.admin.query("UPDATE dsar.deadlines SET request_id = $2 WHERE request_id = $1 AND rule = 'gdpr-extended'", [first, third])
            // The day itself cannot be written: not even the schema owner can hide an overdue request.
            let refused = await #expect(throws: StoreError.self) {
                try await fixture.admin.query("UPDATE dsar.requests SET due_on = NULL WHERE id = $1", [second])
            }
            #expect("\(refused.map { "\($0)" } ?? "")".contains("insufficient_privilege"))
            let rows = try await fixture.admin.query(
                """
                SELECT r.number, r.due_on::text AS kept,
                       (SELECT min(d.due_on) FROM dsar.deadlines d WHERE d.request_id = r.id AND d.in_force AND d.due_on IS NOT NULL)::text AS grouped
                FROM dsar.requests r ORDER BY r.number
                """
            ).rows
            #expect(rows.count == 4)
            for row in rows {
                let (kept, grouped, number) = (try row.optionalString("kept"), try row.optionalString("grouped"), try row.int64("number"))
                #expect(kept == grouped, "request \(number)")
            }
            let (moved, none) = (try rows[2].optionalString("kept"), try rows[3].optionalString("kept"))
            #expect(moved == today.adding(days: -2).description, "the moved deadline is the due day")
            #expect(none == today.adding(days: -30).description, "the deadline moved to it is its due day")
            let page = try await fixture.dsar.transaction { connection in
                try register.page(.init(status: .open), offset: 0, limit: 50, warnDays: 5, on: connection)
            }
            #expect(page.overdue == 2 && page.rows.first { $0.number == numbers[2] }?.daysLeft == -2)
        }
    }

    @Test("a negative offset, a page of 0 or more than the limit, a negative window: refused by name")
    func badArguments() async throws {
        try await DSARFixture.with("dsar_pages_bad") { fixture in
            let register = fixture.register()
            for (filter, offset, limit, warn) in [
                (RequestRegister.RegisterFilter(), -1, 50, 3), (.init(), 0, 0, 3), (.init(), 0, RequestRegister.registerPageLimit + 1, 3),
                (.init(dueWithin: -2), 0, 50, 3), (.init(), 0, 50, -1),
            ] {
                let error = await #expect(throws: SubjectRequestError.self) {
                    try await fixture.dsar.transaction { connection in _ = try register.page(filter, offset: offset, limit: limit, warnDays: warn, on: connection) }
                }
                #expect(error?.code == .invalidArgument && (error.map { "\($0)" } ?? "").contains("register's"))
            }
        }
    }
}
