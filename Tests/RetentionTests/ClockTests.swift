import Foundation
import Retention
import Settings
import Testing
import TestSupport

/// The clocks are values: every rule and boundary is checked here without I/O.
@Suite("Retention clocks (R1112-7, journal months, sessions)")
struct ClockTests {
    static let rules = RetentionPolicy.CareRecords(
        yearsAfterLastEpisode: 20, untilAge: 28, yearsAfterDeath: 10, deathWithinYears: 10, timeZone: "Europe/Paris", action: .pseudonymise,
        justification: "R1112-7 of the Code de la santé publique")
    let clock = CareRecordClock(rules: Self.rules)

    func day(_ text: String) -> CivilDate { try! CivilDate(parsing: text) }

    /// The decision on the day before the term and on the term itself.
    func around(_ history: CareRecordClock.History, clock: CareRecordClock? = nil) -> (before: RetentionDecision, on: RetentionDecision, term: CareRecordClock.Term) {
        let clock = clock ?? self.clock
        let term = clock.term(of: history)
        let due = term.dueOn!
        return (clock.decision(for: history, on: due.adding(days: -1)).0, clock.decision(for: history, on: due).0, term)
    }

    @Test("Civil dates: months and years keep the day number or clamp to the month's end (CPC art. 641); day numbers round-trip")
    func civilDates() throws {
        #expect(day("2024-01-31").adding(months: 1) == day("2024-02-29"))
        #expect(day("2023-01-31").adding(months: 1) == day("2023-02-28"))
        #expect(day("2024-02-29").adding(years: 1) == day("2025-02-28"))
        #expect(day("2024-02-29").adding(years: 4) == day("2028-02-29"))
        #expect(day("1872-02-29").adding(years: 28) == day("1900-02-28"), "1900 is not a leap year")
        #expect(day("2025-12-15").adding(months: 2) == day("2026-02-15") && day("2026-02-15").adding(months: -2) == day("2025-12-15"))
        #expect(day("2024-03-01").adding(days: -1) == day("2024-02-29") && day("2023-12-31").adding(days: 1) == day("2024-01-01"))
        #expect(day("1970-01-01").dayNumber == 0 && day("2000-03-01").dayNumber == 11_017)
        var random = TestSeed.generator(test: "civil dates round-trip")
        for _ in 0..<2000 {
            let number = Int.random(in: -200_000...200_000, using: &random)
            let date = CivilDate(dayNumber: number)
            let parsed = try CivilDate(parsing: date.description)
            #expect(date.dayNumber == number && parsed == date, "\(number) seed \(random.seed)")
        }
        #expect(CivilDate(utc: Date(timeIntervalSince1970: 86_400 * 11_017 + 86_399)) == day("2000-03-01"))
        // 23:30 UTC on 31 December is already 1 January in Paris.
        let lateEvening = day("2024-12-31").startUTC.addingTimeInterval(23.5 * 3600)
        #expect(CivilDate(lateEvening, in: TimeZone(identifier: "Europe/Paris")!) == day("2025-01-01"))
        for bad in ["2025-02-30", "2025-13-01", "25-01-01", "2025-1-1", "2025/01/01", "", "２０２５-01-01"] {
            #expect(throws: RetentionError.self, "\(bad)") { try CivilDate(parsing: bad) }
        }
        #expect(try CalendarMonth(parsing: "2024-02").end == day("2024-03-01"))
        #expect(throws: RetentionError.self) { try CalendarMonth(parsing: "2024-13") }
    }

    @Test("20 years after the last episode: kept through the anniversary, due the day after")
    func lastEpisode() {
        let history = CareRecordClock.History(birthDate: day("1950-06-10"), registeredOn: day("2001-01-01"), lastEpisodeEnd: day("2005-03-14"))
        let (before, on, term) = around(history)
        #expect(term.rule == .lastEpisode && term.keptThrough == day("2025-03-14") && term.dueOn == day("2025-03-15"))
        #expect(before == .notDue(term: day("2025-03-15")) && on == .due(term: day("2025-03-15")))
        #expect(term.basis == ["last_episode": day("2005-03-14")])
    }

    @Test("A patient who never had an episode is counted from registration; an open episode never expires")
    func registrationAndOpen() {
        let registered = CareRecordClock.History(birthDate: day("1970-01-01"), registeredOn: day("2001-09-09"), lastEpisodeEnd: nil)
        #expect(clock.term(of: registered).rule == .registration && clock.term(of: registered).dueOn == day("2021-09-10"))
        var open = CareRecordClock.History(
            birthDate: day("1930-01-01"), registeredOn: day("1990-01-01"), lastEpisodeEnd: day("1991-01-01"), hasOpenEpisode: true, dateOfDeath: day("1992-01-01"))
        #expect(clock.decision(for: open, on: day("2100-01-01")).0 == .never)
        open.hasOpenEpisode = false
        #expect(clock.decision(for: open, on: day("2100-01-01")).0 == .due(term: day("2002-01-02")))
    }

    @Test("Under 28 at the end of the 20 years: kept through the 28th birthday")
    func minor() {
        let history = CareRecordClock.History(birthDate: day("2000-08-20"), registeredOn: day("2002-05-01"), lastEpisodeEnd: day("2003-01-10"))
        let (before, on, term) = around(history)
        #expect(term.rule == .untilAge && term.keptThrough == day("2028-08-20"))
        #expect(before == .notDue(term: day("2028-08-21")) && on == .due(term: day("2028-08-21")))
        #expect(term.basis["birthday"] == day("2028-08-20") && term.basis["last_episode"] == day("2003-01-10"))
        // 28 the very day the 20 years end: the standard rule already covers it.
        let same = CareRecordClock.History(birthDate: day("1990-04-04"), registeredOn: day("1998-01-01"), lastEpisodeEnd: day("1998-04-04"))
        #expect(clock.term(of: same).rule == .lastEpisode && clock.term(of: same).dueOn == day("2018-04-05"))
    }

    @Test("Born on 29 February: the 28th birthday falls on 29 February; an 18th birthday in a common year falls on 28 February")
    func leapDayBirth() {
        let history = CareRecordClock.History(birthDate: day("2000-02-29"), registeredOn: day("2001-05-01"), lastEpisodeEnd: day("2001-05-05"))
        let (before, on, term) = around(history)
        #expect(term.rule == .untilAge && term.keptThrough == day("2028-02-29") && term.dueOn == day("2028-03-01"))
        #expect(before == .notDue(term: day("2028-03-01")) && on == .due(term: day("2028-03-01")))
        // A coordination tool that keeps less (3 years, or until 18): the 18th birthday of a 29 February birth in 2022 is 28 February.
        var shorter = Self.rules
        shorter.yearsAfterLastEpisode = 3
        shorter.untilAge = 18
        let short = CareRecordClock(rules: shorter)
        let child = CareRecordClock.History(birthDate: day("2004-02-29"), registeredOn: day("2005-01-01"), lastEpisodeEnd: day("2005-01-10"))
        let (childBefore, childOn, childTerm) = around(child, clock: short)
        #expect(childTerm.rule == .untilAge && childTerm.keptThrough == day("2022-02-28") && childTerm.dueOn == day("2022-03-01"))
        #expect(childBefore == .notDue(term: day("2022-03-01")) && childOn == .due(term: day("2022-03-01")))
        // A death on 29 February counts ten years to 28 February.
        let leapDeath = CareRecordClock.History(
            birthDate: day("1940-01-01"), registeredOn: day("2010-01-01"), lastEpisodeEnd: day("2011-01-01"), dateOfDeath: day("2012-02-29"))
        #expect(clock.term(of: leapDeath).keptThrough == day("2022-02-28") && clock.term(of: leapDeath).dueOn == day("2022-03-01"))
    }

    @Test("Death 9 years 364 days after the last episode: 10 years after death; exactly 10 years after: the 20-year rule")
    func death() {
        let last = day("2011-06-01")
        let within = CareRecordClock.History(birthDate: day("1940-02-02"), registeredOn: day("2011-01-01"), lastEpisodeEnd: last, dateOfDeath: day("2021-05-31"))
        #expect(day("2021-05-31").dayNumber - day("2020-06-01").dayNumber == 364, "nine years and 364 days after the last episode")
        let (withinBefore, withinOn, withinTerm) = around(within)
        #expect(withinTerm.rule == .afterDeath && withinTerm.keptThrough == day("2031-05-31") && withinTerm.dueOn == day("2031-06-01"))
        #expect(withinBefore == .notDue(term: day("2031-06-01")) && withinOn == .due(term: day("2031-06-01")))
        #expect(withinTerm.basis == ["last_episode": last, "death": day("2021-05-31")])

        let tenYears = CareRecordClock.History(birthDate: day("1940-02-02"), registeredOn: day("2011-01-01"), lastEpisodeEnd: last, dateOfDeath: day("2021-06-01"))
        let (tenBefore, tenOn, tenTerm) = around(tenYears)
        #expect(tenTerm.rule == .lastEpisode && tenTerm.keptThrough == day("2031-06-01") && tenTerm.dueOn == day("2031-06-02"))
        #expect(tenBefore == .notDue(term: day("2031-06-02")) && tenOn == .due(term: day("2031-06-02")))
        // On 2031-06-01 the first is due and the second is not.
        #expect(clock.decision(for: within, on: day("2031-06-01")).0 == .due(term: day("2031-06-01")))
        #expect(clock.decision(for: tenYears, on: day("2031-06-01")).0 == .notDue(term: day("2031-06-02")))

        // A child who died young: ten years after death, no extension to the 28th birthday.
        let child = CareRecordClock.History(birthDate: day("2005-01-01"), registeredOn: day("2005-06-01"), lastEpisodeEnd: day("2008-01-01"), dateOfDeath: day("2010-01-01"))
        #expect(clock.term(of: child).rule == .afterDeath && clock.term(of: child).dueOn == day("2020-01-02"))
    }

    @Test("A hold in force keeps a due record and is named; released, the record is due again the day of the release; a later hold changes nothing before it")
    func holds() {
        var history = CareRecordClock.History(birthDate: day("1950-06-10"), registeredOn: day("2001-01-01"), lastEpisodeEnd: day("2005-03-14"))
        history.holds = [
            HoldSpan(id: 7, placedOn: day("2024-01-01"), releasedOn: day("2025-06-01")),
            HoldSpan(id: 9, placedOn: day("2025-05-01"), releasedOn: nil),
            HoldSpan(id: 12, placedOn: day("2030-01-01"), releasedOn: nil),
        ]
        #expect(clock.decision(for: history, on: day("2025-03-15")).0 == .held(term: day("2025-03-15"), holds: [7]))
        #expect(clock.decision(for: history, on: day("2025-05-31")).0 == .held(term: day("2025-03-15"), holds: [7, 9]))
        #expect(clock.decision(for: history, on: day("2025-06-01")).0 == .held(term: day("2025-03-15"), holds: [9]))
        history.holds.removeAll { $0.id == 9 }
        #expect(clock.decision(for: history, on: day("2025-06-01")).0 == .due(term: day("2025-03-15")), "released on the day: due that day")
        #expect(clock.decision(for: history, on: day("2025-05-31")).0 == .held(term: day("2025-03-15"), holds: [7]))
        #expect(clock.decision(for: history, on: day("2025-03-14")).0 == .notDue(term: day("2025-03-15")), "not yet due: the hold does not matter")
    }

    @Test("Random histories: the term is never before the 20 years unless death shortened it, never before the minimum age, and due exactly from it")
    func randomHistories() {
        var random = TestSeed.generator(test: "random care histories")
        for _ in 0..<5000 {
            let birth = CivilDate(dayNumber: Int.random(in: -25_000...15_000, using: &random))
            let last = birth.adding(days: Int.random(in: 0...30_000, using: &random))
            let death: CivilDate? = Bool.random(using: &random) ? last.adding(days: Int.random(in: -100...8_000, using: &random)) : nil
            let history = CareRecordClock.History(birthDate: birth, registeredOn: birth, lastEpisodeEnd: last, dateOfDeath: death)
            let term = clock.term(of: history)
            let due = term.dueOn!
            if term.rule == .afterDeath {
                #expect(death! < last.adding(years: 10) && term.keptThrough == death!.adding(years: 10), "seed \(random.seed)")
            } else {
                #expect(due > last.adding(years: 20) && due > birth.adding(years: 28), "seed \(random.seed)")
                #expect(death.map { $0 >= last.adding(years: 10) } ?? true, "seed \(random.seed)")
            }
            #expect(clock.decision(for: history, on: due.adding(days: -1)).0 == .notDue(term: due))
            #expect(clock.decision(for: history, on: due).0 == .due(term: due))
        }
    }

    @Test("Journal months: online 12 months after the month ends, the archive kept 6 years after it; holds on a period name the months they overlap")
    func journalMonths() throws {
        let clock = JournalMonthClock(onlineMonths: 12, archiveYears: 6)
        let january = try CalendarMonth(parsing: "2025-01")
        #expect(clock.archiveDue(january) == day("2026-02-01") && clock.destructionDue(january) == day("2031-02-01"))
        let leapFebruary = try CalendarMonth(parsing: "2024-02")
        #expect(clock.archiveDue(leapFebruary) == day("2025-03-01"))
        #expect(JournalMonthClock(onlineMonths: 24, archiveYears: 6).archiveDue(january) == day("2027-02-01"))
        #expect(JournalMonthClock.period(from: day("2025-01-31"), through: day("2025-01-31"), covers: january))
        #expect(!JournalMonthClock.period(from: day("2025-01-31"), through: day("2025-01-31"), covers: try CalendarMonth(parsing: "2025-02")))
        #expect(JournalMonthClock.period(from: day("2024-12-01"), through: day("2025-03-01"), covers: try CalendarMonth(parsing: "2025-03")))
        #expect(!JournalMonthClock.period(from: day("2025-02-01"), through: day("2025-03-01"), covers: january))
        #expect(
            RetentionDecision.deciding(term: clock.archiveDue(january), on: day("2026-01-31"), holds: []) == .notDue(term: day("2026-02-01")))
        let sessions = SessionClock(daysAfterEnd: 30)
        let ended = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(sessions.due(endedAt: ended) == ended.addingTimeInterval(30 * 86_400) && sessions.endedBefore(sessions.due(endedAt: ended)) == ended)
    }
}
