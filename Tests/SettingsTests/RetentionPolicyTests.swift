import Foundation
import Settings
import Testing

@Suite("policies/retention.yaml")
struct RetentionPolicyTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A valid policy whose settings can be replaced one by one (`key: value` lines).
    static func text(_ replacing: [String: String] = [:], dropping: Set<String> = [], adding: String = "") -> String {
        let justification = "  justification: A sentence long enough to say why, for the register.\n"
        var sections: [(String, [(String, String)])] = [
            ("journal", [("online_months", "12"), ("action", "archive-then-purge"), ("automatic", "true")]),
            ("cold_archives", [("archive_years", "6"), ("action", "destroy")]),
            (
                "care_records",
                [("years_after_last_episode", "20"), ("until_age", "28"), ("years_after_death", "10"), ("death_within_years", "10"), ("action", "pseudonymise")]
            ),
            ("sessions", [("days_after_end", "30"), ("action", "destroy")]),
            ("backups", [("margin_days", "400")]),
        ]
        sections = sections.filter { !dropping.contains($0.0) }
        var text = ""
        for (name, settings) in sections {
            text += "\(name):\n"
            for (key, value) in settings where !dropping.contains("\(name).\(key)") {
                text += "  \(key): \(replacing["\(name).\(key)"] ?? value)\n"
            }
            if !dropping.contains("\(name).justification") { text += replacing["\(name).justification"].map { "  justification: \($0)\n" } ?? justification }
        }
        return text + adding
    }

    func parse(_ text: String) throws -> RetentionPolicy { try RetentionPolicy.parse(SettingsDocument(file: "retention.yaml", text: text)) }

    /// The error a policy text is refused with.
    func refusal(_ text: String) -> ConfigurationError? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error as? ConfigurationError
        }
    }

    @Test("The shipped policy is valid and says what the DPO decided, with a justification for every class")
    func shipped() throws {
        let policy = try RetentionPolicy.load(path: Self.repository.appendingPathComponent("policies/retention.yaml").path)
        #expect(policy.journal.onlineMonths == 12 && policy.journal.automatic && policy.journal.action == .archiveThenPurge)
        #expect(policy.coldArchives.archiveYears == 6 && policy.coldArchives.action == .destroy)
        #expect(policy.careRecords.yearsAfterLastEpisode == 20 && policy.careRecords.untilAge == 28)
        #expect(policy.careRecords.yearsAfterDeath == 10 && policy.careRecords.deathWithinYears == 10 && policy.careRecords.timeZone == "Europe/Paris")
        #expect(policy.sessions.daysAfterEnd == 30 && policy.backups.marginDays == 400)
        for justification in [policy.journal.justification, policy.coldArchives.justification, policy.careRecords.justification, policy.sessions.justification] {
            #expect(justification.count >= RetentionPolicy.minimumJustificationLength && !justification.contains("\n"))
        }
        #expect(policy.honourLegalHolds)
        // The register of subject requests has its term, enforced like the others; a policy without one is noted.
        #expect(policy.subjectRequests?.yearsAfterClosure == 5 && policy.subjectRequests?.action == .destroy)
        #expect((policy.subjectRequests?.justification.count ?? 0) >= RetentionPolicy.minimumJustificationLength)
        #expect(policy.unenforcedClasses.isEmpty)
        let withoutTerm = try parse(Self.text()).unenforcedClasses
        #expect(withoutTerm.count == 1 && withoutTerm[0].contains("subject_requests: not set"))
        // The shipped pair of policies is consistent.
        try RetentionPolicy.checkBackups(
            retention: SettingsDocument(contentsOf: Self.repository.appendingPathComponent("policies/retention.yaml").path),
            backup: SettingsDocument(contentsOf: Self.repository.appendingPathComponent("policies/backup.yaml").path))
    }

    @Test("The base text of these tests is valid, and what it leaves out takes the R1112-7 defaults")
    func base() throws {
        let policy = try parse(Self.text(dropping: ["care_records.until_age", "care_records.years_after_death", "care_records.death_within_years"]))
        #expect(policy.careRecords.untilAge == 28 && policy.careRecords.yearsAfterDeath == 10 && policy.careRecords.deathWithinYears == 10)
        #expect(policy.careRecords.timeZone == "Europe/Paris")
    }

    @Test("Out-of-range terms, contradictions and unsupported actions are refused at the offending line, saying why")
    func refusals() {
        let cases: [(String, line: Int, fragment: String)] = [
            (Self.text(["journal.online_months": "36"]), 2, "journal.online_months must be from 12 to 24, not 36"),
            (Self.text(["journal.online_months": "24", "cold_archives.archive_years": "2"]), 7, "must be kept longer than their months stay online"),
            (Self.text(["journal.action": "destroy"]), 3, "destroy is not supported for journal"),
            (Self.text(["care_records.action": "destroy"]), 15, "destroy is not supported for care_records by this version; its action is pseudonymise"),
            (Self.text(["care_records.action": "shred"]), 15, "care_records.action must be one of archive-then-purge, pseudonymise, destroy, not shred"),
            (Self.text(["care_records.years_after_death": "30"]), 13, "cannot exceed years_after_last_episode"),
            (Self.text(["sessions.days_after_end": "0"]), 18, "sessions.days_after_end must be from 1 to 3650, not 0"),
            (Self.text(["backups.margin_days": "-3"]), 22, "backups.margin_days must be from 1 to 3660"),
            (Self.text(["journal.justification": "because"]), 5, "journal.justification: write why this term is needed"),
            (Self.text(dropping: ["sessions.justification"]), 18, "sessions.justification is required"),
            (Self.text(dropping: ["sessions"]), 1, "the sessions section is required"),
            (Self.text(adding: "subject_requests:\n  days: 3\n"), 25, "unknown setting subject_requests.days"),
            (
                Self.text(adding: "subject_requests:\n  years_after_closure: 5\n  action: pseudonymise\n  justification: A sentence long enough to say why, for the register.\n"),
                26, "pseudonymise is not supported for subject_requests"
            ),
            (Self.text(adding: "legal_holds:\n  honoured: false\n"), 25, "legal holds are always honoured"),
            (Self.text(adding: "sesions_old:\n  days: 3\n"), 24, "unknown setting sesions_old"),
            (Self.text(adding: "care_records:\n  years_after_last_episode: 5\n"), 10, "set more than once"),
        ]
        for (text, line, fragment) in cases {
            let error = refusal(text)
            #expect(error?.line == line, "\(fragment): \(error.map { "\($0)" } ?? "accepted")")
            #expect(error?.description.contains(fragment) == true, "\(error.map { "\($0)" } ?? "accepted")")
        }
        let zone = refusal(Self.text(adding: "").replacingOccurrences(of: "care_records:\n", with: "care_records:\n  time_zone: Mars/Olympus\n"))
        #expect(zone?.description.contains("Mars/Olympus is not a time zone") == true, "\(String(describing: zone))")
    }

    @Test("Backups that outlive purges by more than the stated margin are refused, naming both settings and both files")
    func backupConsistency() throws {
        let backup = try SettingsDocument(file: "backup.yaml", text: "keep:\n  last: 4\n  daily: 7\n  weekly: 5\n  monthly: 12\n  floor: 2\n")
        try RetentionPolicy.checkBackups(retention: SettingsDocument(file: "retention.yaml", text: Self.text()), backup: backup)
        let tight = try SettingsDocument(file: "retention.yaml", text: Self.text(["backups.margin_days": "60"]))
        let error = #expect(throws: ConfigurationError.self) { try RetentionPolicy.checkBackups(retention: tight, backup: backup) }
        #expect(error?.file == "retention.yaml" && error?.line == 22, "\(String(describing: error))")
        #expect(error?.description.contains("backup.yaml:5:12: keep.monthly gives 372 days") == true, "\(String(describing: error))")
        #expect(error?.description.contains("more than the 60 days") == true)
        // Weekly backups alone: five weeks fit a 60-day margin.
        let weekly = try SettingsDocument(file: "backup.yaml", text: "keep:\n  last: 4\n  daily: 7\n  weekly: 5\n  monthly: 0\n  floor: 2\n")
        try RetentionPolicy.checkBackups(retention: tight, backup: weekly)
        #expect(RetentionPolicy.backupHorizon(try BackupPolicy.parse(weekly)) == (35, "keep.weekly"))
    }
}
