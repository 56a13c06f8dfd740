import Foundation
import SubjectRequests
import Testing

/// Every rule and boundary of the deadlines, with fixed dates and no I/O.
@Suite("Deadlines: GDPR art. 12(3) and CSP L1111-7, with fixed dates")
struct DeadlineTests {
    static let paris = TimeZone(identifier: "Europe/Paris")!

    static func day(_ text: String) -> CivilDate { try! CivilDate(parsing: text) }

    /// 10:00 in Paris on `text`.
    static func morning(_ text: String) -> Date { day(text).endOfDay(in: paris).addingTimeInterval(-14 * 3600) }

    static func facts(
        _ kind: RequestKind = .access, received: String, capacity: RequesterCapacity = .patient, health: Bool = true, latest: String? = nil,
        notice: String? = nil
    ) -> DeadlineFacts {
        DeadlineFacts(
            kind: kind, capacity: capacity, receivedAt: morning(received), receivedOn: day(received), healthInformation: health,
            latestInformationOn: latest.map(day), extensionNoticeOn: notice.map(day))
    }

    static func deadline(_ rule: DeadlineRule, in deadlines: [Deadline]) -> Deadline? { deadlines.first { $0.rule == rule } }

    @Test("One month runs to the same day of the next month, or its last day: 31 January → 28 February, 29 in a leap year")
    func oneMonthAcrossMonthEnds() {
        let cases = [
            ("2026-01-31", "2026-02-28"), ("2028-01-31", "2028-02-29"), ("2026-01-30", "2026-02-28"), ("2026-03-31", "2026-04-30"),
            ("2026-01-15", "2026-02-15"), ("2026-12-31", "2027-01-31"), ("2026-08-31", "2026-09-30"),
        ]
        for (received, due) in cases {
            let deadlines = RequestDeadlines.deadlines(for: Self.facts(.erasure, received: received))
            #expect(Self.deadline(.gdprOneMonth, in: deadlines)?.dueOn == Self.day(due), "received \(received)")
            #expect(RequestDeadlines.effectiveDue(deadlines) == Self.day(due))
        }
    }

    @Test("An access to health information: no sooner than 48 hours after receipt, the floor met exactly at 48 hours")
    func reflectionFloor() {
        let facts = Self.facts(received: "2026-03-02")
        let deadlines = RequestDeadlines.deadlines(for: facts)
        let floor = try! #require(RequestDeadlines.earliestAnswer(deadlines))
        #expect(floor == facts.receivedAt.addingTimeInterval(172_800))
        #expect(Self.deadline(.cspReflection, in: deadlines)?.dueOn == nil)
        // The floor is an instant: one second before is too early, at it is lawful.
        #expect(floor.addingTimeInterval(-1) < floor && !(floor < floor))
    }

    @Test("At the latest 8 days after the request, the 8th day included, and before the one-month deadline")
    func eightDays() {
        let deadlines = RequestDeadlines.deadlines(for: Self.facts(received: "2026-01-28", latest: "2025-12-01"))
        #expect(Self.deadline(.cspEightDays, in: deadlines)?.dueOn == Self.day("2026-02-05"))
        #expect(Self.deadline(.gdprOneMonth, in: deadlines)?.dueOn == Self.day("2026-02-28"))
        #expect(RequestDeadlines.effectiveDue(deadlines) == Self.day("2026-02-05"))
        #expect(Self.deadline(.cspTwoMonths, in: deadlines) == nil)
    }

    @Test("Two months when the most recent information is more than five years old: the switch is at exactly five years")
    func fiveYearSwitch() {
        // Exactly five years old on the day of receipt: not more than five years, eight days.
        let exactly = RequestDeadlines.deadlines(for: Self.facts(received: "2026-03-10", latest: "2021-03-10"))
        #expect(Self.deadline(.cspEightDays, in: exactly)?.dueOn == Self.day("2026-03-18"))
        #expect(Self.deadline(.cspTwoMonths, in: exactly) == nil)
        // One day older: two months (received 10 March → 10 May), which the one-month GDPR deadline still precedes.
        let older = RequestDeadlines.deadlines(for: Self.facts(received: "2026-03-10", latest: "2021-03-09"))
        #expect(Self.deadline(.cspTwoMonths, in: older)?.dueOn == Self.day("2026-05-10"))
        #expect(Self.deadline(.cspEightDays, in: older) == nil)
        #expect(RequestDeadlines.effectiveDue(older) == Self.day("2026-04-10"))
        // A birthday on 29 February: five years before 28 February 2029 is 28 February 2024.
        #expect(RequestDeadlines.informationIsMoreThanFiveYearsOld(Self.facts(received: "2029-02-28", latest: "2024-02-27")))
        #expect(!RequestDeadlines.informationIsMoreThanFiveYearsOld(Self.facts(received: "2029-02-28", latest: "2024-02-28")))
        // Unknown: the shorter deadline.
        #expect(Self.deadline(.cspEightDays, in: RequestDeadlines.deadlines(for: Self.facts(received: "2026-03-10"))) != nil)
    }

    @Test("CSP L1111-7 governs only an access to health information, by the patient, a representative, an heir or a chosen doctor")
    func cspScope() {
        for capacity in [RequesterCapacity.patient, .legalRepresentative, .heir, .chosenDoctor] {
            #expect(RequestDeadlines.cspApplies(Self.facts(received: "2026-03-10", capacity: capacity)), "\(capacity)")
        }
        #expect(!RequestDeadlines.cspApplies(Self.facts(received: "2026-03-10", capacity: .staffMember)))
        #expect(!RequestDeadlines.cspApplies(Self.facts(received: "2026-03-10", health: false)))
        for kind in RequestKind.allCases where kind != .access {
            let deadlines = RequestDeadlines.deadlines(for: Self.facts(kind, received: "2026-03-10"))
            #expect(deadlines.map(\.rule) == [.gdprOneMonth], "\(kind)")
            #expect(RequestDeadlines.earliestAnswer(deadlines) == nil)
        }
    }

    @Test("An extension notice on the last day of the first month is in time; the day after is too late")
    func extensionInsideAndAfterTheFirstMonth() throws {
        let facts = Self.facts(.erasure, received: "2026-01-31")
        try RequestDeadlines.checkExtension(notice: Self.day("2026-02-28"), facts: facts)
        try RequestDeadlines.checkExtension(notice: Self.day("2026-01-31"), facts: facts)
        let late = #expect(throws: SubjectRequestError.self) { try RequestDeadlines.checkExtension(notice: Self.day("2026-03-01"), facts: facts) }
        #expect(late?.code == .extensionTooLate)
        #expect(late?.message.contains("2026-02-28") == true)
        let early = #expect(throws: SubjectRequestError.self) { try RequestDeadlines.checkExtension(notice: Self.day("2026-01-30"), facts: facts) }
        #expect(early?.code == .invalidDate)
        var extended = facts
        extended.extensionNoticeOn = Self.day("2026-02-20")
        let twice = #expect(throws: SubjectRequestError.self) { try RequestDeadlines.checkExtension(notice: Self.day("2026-02-21"), facts: extended) }
        #expect(twice?.code == .notReady)
        // Extended: three months from receipt, the one-month deadline out of force.
        let deadlines = RequestDeadlines.deadlines(for: extended)
        #expect(Self.deadline(.gdprExtended, in: deadlines)?.dueOn == Self.day("2026-04-30"))
        #expect(Self.deadline(.gdprOneMonth, in: deadlines)?.inForce == false)
        #expect(RequestDeadlines.effectiveDue(deadlines) == Self.day("2026-04-30"))
    }

    @Test("An extension does not move the CSP deadline of an access to health information")
    func extensionLeavesCSP() {
        var facts = Self.facts(received: "2026-01-10", latest: "2025-06-01")
        facts.extensionNoticeOn = Self.day("2026-01-20")
        #expect(RequestDeadlines.effectiveDue(RequestDeadlines.deadlines(for: facts)) == Self.day("2026-01-18"))
    }

    @Test("Standing on a day: on time, nearing within the warning days (the due day itself included), past the day after")
    func standing() {
        let due = Self.day("2026-02-28")
        #expect(RequestDeadlines.standing(due: due, today: Self.day("2026-02-20"), warnDays: 3) == .onTime(daysLeft: 8))
        #expect(RequestDeadlines.standing(due: due, today: Self.day("2026-02-25"), warnDays: 3) == .nearing(daysLeft: 3))
        #expect(RequestDeadlines.standing(due: due, today: due, warnDays: 3) == .nearing(daysLeft: 0))
        #expect(RequestDeadlines.standing(due: due, today: Self.day("2026-03-01"), warnDays: 3) == .past(daysLate: 1))
    }

    @Test("Dates are parsed strictly: malformed or impossible ones are refused with a clear message")
    func malformedDates() throws {
        for text in ["2026-02-30", "2026-13-01", "2026-1-05", "26-01-05", "2026/01/05", "", "2026-01-05T10:00", "２０２６-01-05", "2026-00-10"] {
            let error = #expect(throws: SubjectRequestError.self, "\(text)") { try CivilDate(parsing: text, what: "--received") }
            #expect(error?.code == .invalidDate)
            #expect(error?.message.contains("--received") == true)
        }
        #expect(try CivilDate(parsing: "2028-02-29").description == "2028-02-29")
        #expect(Self.day("2026-01-31").french == "31 janvier 2026" && Self.day("2026-03-01").french == "1er mars 2026")
    }

    @Test("Calendar arithmetic agrees with Foundation's Gregorian calendar over 400 years of days")
    func calendarArithmetic() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let start = Self.day("1900-01-01")
        for offset in stride(from: 0, to: 146_097, by: 97) {
            let date = start.adding(days: offset)
            let components = calendar.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: Double(date.daysSinceEpoch) * 86400))
            #expect(components.year == date.year && components.month == date.month && components.day == date.day, "\(date)")
            #expect(CivilDate(daysSinceEpoch: date.daysSinceEpoch) == date)
        }
    }

    @Test("A day is read in the controller's time zone: 23:30 UTC on 31 January is 1 February in Paris")
    func timeZones() {
        let moment = ISO8601DateFormatter().date(from: "2026-01-31T23:30:00Z")!
        #expect(CivilDate.on(moment, in: Self.paris) == Self.day("2026-02-01"))
        #expect(CivilDate.on(moment, in: TimeZone(identifier: "UTC")!) == Self.day("2026-01-31"))
        // The end of a summer day in Paris is 22:00 UTC.
        #expect(Self.day("2026-07-14").endOfDay(in: Self.paris) == ISO8601DateFormatter().date(from: "2026-07-14T22:00:00Z"))
        #expect(Self.day("2026-01-14").endOfDay(in: Self.paris) == ISO8601DateFormatter().date(from: "2026-01-14T23:00:00Z"))
    }
}
