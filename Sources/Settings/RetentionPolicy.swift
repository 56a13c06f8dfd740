import Foundation

/// How long each class of personal data is kept, what happens at the end of its
/// term, and why, as the DPO decided it (`policies/retention.yaml`). Applied by
/// `osmose-retentiond` and `osmosectl retention`; each class carries the written
/// justification the register of processing needs (CNIL deliberation 2021-122:
/// access logs 6 to 12 months by default, longer only with a reason).
public struct RetentionPolicy: Hashable, Sendable {
    /// What is done to an item of a class at the end of its term.
    public enum Action: String, Hashable, Sendable, Codable, CaseIterable {
        /// A journal month: written to a verified cold archive, then its entries dropped.
        case archiveThenPurge = "archive-then-purge"
        /// Identifiers replaced by a keyed pseudonym, free text destroyed, the rest kept for statistics.
        case pseudonymise
        /// Removed entirely.
        case destroy
    }

    /// The access journal's monthly partitions.
    public struct Journal: Hashable, Sendable {
        /// Months a UTC month stays online after it ends (12 to 24).
        public var onlineMonths: Int
        /// Always archive-then-purge.
        public var action: Action
        /// Whether osmose-retentiond archives and purges due months without a plan
        /// approved by the DPO (an archive loses nothing: the entries live on in it).
        public var automatic: Bool
        /// Why this term, for the register of processing.
        public var justification: String

        /// A journal class.
        public init(onlineMonths: Int, action: Action = .archiveThenPurge, automatic: Bool, justification: String) {
            self.onlineMonths = onlineMonths
            self.action = action
            self.automatic = automatic
            self.justification = justification
        }
    }

    /// The cold archives of journal months.
    public struct ColdArchives: Hashable, Sendable {
        /// Years after its month ends that a month's archive is kept.
        public var archiveYears: Int
        /// Always destroy.
        public var action: Action
        /// Why this term.
        public var justification: String

        /// A cold archives class.
        public init(archiveYears: Int, action: Action = .destroy, justification: String) {
            self.archiveYears = archiveYears
            self.action = action
            self.justification = justification
        }
    }

    /// The care records (patients, episodes, transmissions, versions), on one
    /// clock per patient (Code de la santé publique, art. R1112-7).
    public struct CareRecords: Hashable, Sendable {
        /// Years after the last care episode (20 in R1112-7).
        public var yearsAfterLastEpisode: Int
        /// Kept at least until this birthday (28 in R1112-7).
        public var untilAge: Int
        /// Years after death, when the patient died within ``deathWithinYears`` of the last episode (10 in R1112-7).
        public var yearsAfterDeath: Int
        /// The window after the last episode within which a death shortens the term (10 in R1112-7).
        public var deathWithinYears: Int
        /// The time zone in which an episode's end becomes a calendar day (the hospital's).
        public var timeZone: String
        /// Always pseudonymise.
        public var action: Action
        /// Why this term.
        public var justification: String

        /// A care records class.
        public init(
            yearsAfterLastEpisode: Int, untilAge: Int, yearsAfterDeath: Int, deathWithinYears: Int, timeZone: String, action: Action = .pseudonymise,
            justification: String
        ) {
            self.yearsAfterLastEpisode = yearsAfterLastEpisode
            self.untilAge = untilAge
            self.yearsAfterDeath = yearsAfterDeath
            self.deathWithinYears = deathWithinYears
            self.timeZone = timeZone
            self.action = action
            self.justification = justification
        }
    }

    /// Care-service sessions (bearer-token hashes) once ended.
    public struct Sessions: Hashable, Sendable {
        /// Days after a session ended (expiry or logout) before its row is removed.
        public var daysAfterEnd: Int
        /// Always destroy.
        public var action: Action
        /// Why this term.
        public var justification: String

        /// A sessions class.
        public init(daysAfterEnd: Int, action: Action = .destroy, justification: String) {
            self.daysAfterEnd = daysAfterEnd
            self.action = action
            self.justification = justification
        }
    }

    /// Backups, which keep what was purged until they are pruned (policies/backup.yaml).
    public struct Backups: Hashable, Sendable {
        /// Days a backup may keep data after its purge: backup.yaml's retention must end within it.
        public var marginDays: Int
        /// Why this margin.
        public var justification: String

        /// A backups class.
        public init(marginDays: Int, justification: String) {
            self.marginDays = marginDays
            self.justification = justification
        }
    }

    /// The register of data-subject requests (`dsar.*`: requests, their notes,
    /// documents, packs and evidence files). At term a retention plan the DPO
    /// approves destroys a closed request's content and keeps its register entry
    /// (docs/retention.md, "Subject requests").
    public struct SubjectRequests: Hashable, Sendable {
        /// Years after a request was closed before it and its evidence file are destroyed.
        public var yearsAfterClosure: Int
        /// Always destroy.
        public var action: Action
        /// Why this term.
        public var justification: String

        /// A subject requests class.
        public init(yearsAfterClosure: Int, action: Action = .destroy, justification: String) {
            self.yearsAfterClosure = yearsAfterClosure
            self.action = action
            self.justification = justification
        }
    }

    /// The journal class.
    public var journal: Journal
    /// The cold archives class.
    public var coldArchives: ColdArchives
    /// The care records class.
    public var careRecords: CareRecords
    /// The sessions class.
    public var sessions: Sessions
    /// The backups class.
    public var backups: Backups
    /// The subject requests class, when the policy names it (none: requests are never planned for destruction).
    public var subjectRequests: SubjectRequests?

    /// A policy of these classes (validated by ``parse(_:)`` when read from a file).
    public init(
        journal: Journal, coldArchives: ColdArchives, careRecords: CareRecords, sessions: Sessions, backups: Backups, subjectRequests: SubjectRequests? = nil
    ) {
        self.journal = journal
        self.coldArchives = coldArchives
        self.careRecords = careRecords
        self.sessions = sessions
        self.backups = backups
        self.subjectRequests = subjectRequests
    }

    /// The classes the policy names that this version records but does not enforce,
    /// each with what that means, for `osmosectl policy check` to say plainly. Every
    /// class is enforced by this version (subject requests since migration 0048);
    /// a policy without `subject_requests` is noted, since its requests would then be kept forever.
    public var unenforcedClasses: [String] {
        guard subjectRequests == nil else { return [] }
        return [
            "subject_requests: not set: closed subject requests are never planned for destruction; "
                + "set years_after_closure (the register of processing needs a term)"
        ]
    }

    /// Months of journal entries kept online.
    public var journalOnlineMonths: Int { journal.onlineMonths }
    /// Years a cold journal archive is kept.
    public var journalArchiveYears: Int { coldArchives.archiveYears }
    /// Years after a patient's last care episode before the record is pseudonymised.
    public var careRecordYears: Int { careRecords.yearsAfterLastEpisode }
    /// Legal holds are always honoured: a hold is a legal obligation, not a preference.
    public var honourLegalHolds: Bool { true }

    /// The classes a policy may name (``unenforcedClasses`` lists those recorded but not enforced).
    public static let classes = ["journal", "cold_archives", "care_records", "sessions", "backups", "legal_holds", "subject_requests"]

    /// The shortest justification accepted: a sentence, not a placeholder.
    public static let minimumJustificationLength = 20

    /// Reads and validates `policies/retention.yaml`.
    /// - Throws: ``ConfigurationError`` with the file, line and reason.
    public static func load(path: String) throws -> RetentionPolicy {
        try parse(SettingsDocument(contentsOf: path))
    }

    /// Validates an already parsed document.
    /// - Throws: ``ConfigurationError`` at the offending setting.
    public static func parse(_ document: SettingsDocument) throws -> RetentionPolicy {
        let root = try document.root(allowedKeys: classes)
        if let holds = try root.mapping("legal_holds", allowedKeys: ["honoured"]), !(try holds.boolean("honoured", default: true)) {
            throw holds.error("honoured", "legal holds are always honoured (a hold is a legal obligation); remove the setting or set it to true")
        }
        func section(_ key: String, _ allowed: [String]) throws -> SettingsMapping {
            guard let mapping = try root.mapping(key, allowedKeys: allowed) else {
                throw root.error(key, "the \(key) section is required: every class of data needs its term, its action and its justification")
            }
            return mapping
        }
        let journalSection = try section("journal", ["online_months", "action", "automatic", "justification"])
        let archiveSection = try section("cold_archives", ["archive_years", "action", "justification"])
        let careSection = try section(
            "care_records", ["years_after_last_episode", "until_age", "years_after_death", "death_within_years", "time_zone", "action", "justification"])
        let sessionSection = try section("sessions", ["days_after_end", "action", "justification"])
        let backupSection = try section("backups", ["margin_days", "justification"])

        let journal = Journal(
            onlineMonths: try journalSection.integer("online_months", in: 12...24),
            action: try action(journalSection, only: .archiveThenPurge),
            automatic: try journalSection.boolean("automatic", default: false),
            justification: try justification(journalSection))
        let archives = ColdArchives(
            archiveYears: try archiveSection.integer("archive_years", in: 1...100),
            action: try action(archiveSection, only: .destroy),
            justification: try justification(archiveSection))
        guard archives.archiveYears * 12 > journal.onlineMonths else {
            throw archiveSection.error("archive_years", "cold archives must be kept longer than their months stay online (journal.online_months: \(journal.onlineMonths))")
        }
        let timeZone = try careSection.optionalString("time_zone") ?? "Europe/Paris"
        guard TimeZoneName.isKnown(timeZone) else {
            throw careSection.error("time_zone", "\(timeZone) is not a time zone this host knows (an IANA name such as Europe/Paris)")
        }
        let care = CareRecords(
            yearsAfterLastEpisode: try careSection.integer("years_after_last_episode", in: 1...100),
            untilAge: try careSection.integer("until_age", in: 0...100, default: 28),
            yearsAfterDeath: try careSection.integer("years_after_death", in: 1...100, default: 10),
            deathWithinYears: try careSection.integer("death_within_years", in: 0...100, default: 10),
            timeZone: timeZone,
            action: try action(careSection, only: .pseudonymise),
            justification: try justification(careSection))
        guard care.yearsAfterDeath <= care.yearsAfterLastEpisode else {
            throw careSection.error(
                "years_after_death", "cannot exceed years_after_last_episode (\(care.yearsAfterLastEpisode)): a death would lengthen the term it shortens")
        }
        let sessions = Sessions(
            daysAfterEnd: try sessionSection.integer("days_after_end", in: 1...3650),
            action: try action(sessionSection, only: .destroy),
            justification: try justification(sessionSection))
        let backups = Backups(marginDays: try backupSection.integer("margin_days", in: 1...3660), justification: try justification(backupSection))
        let requests = try root.mapping("subject_requests", allowedKeys: ["years_after_closure", "action", "justification"]).map { section in
            SubjectRequests(
                yearsAfterClosure: try section.integer("years_after_closure", in: 1...30), action: try action(section, only: .destroy),
                justification: try justification(section))
        }
        return RetentionPolicy(journal: journal, coldArchives: archives, careRecords: care, sessions: sessions, backups: backups, subjectRequests: requests)
    }

    /// The action a class names, when it is the one this version applies to it.
    private static func action(_ mapping: SettingsMapping, only supported: Action) throws -> Action {
        let names = Action.allCases.map(\.rawValue)
        let chosen = Action(rawValue: try mapping.choice("action", from: names))!
        guard chosen == supported else {
            throw mapping.error("action", "\(chosen.rawValue) is not supported for \(mapping.path) by this version; its action is \(supported.rawValue)")
        }
        return chosen
    }

    private static func justification(_ mapping: SettingsMapping) throws -> String {
        let text = try mapping.string("justification").trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.unicodeScalars.count >= minimumJustificationLength, text.unicodeScalars.count <= 2000 else {
            throw mapping.error(
                "justification",
                "write why this term is needed, for the register of processing (\(minimumJustificationLength) to 2000 characters)")
        }
        return text
    }
}

extension RetentionPolicy {
    /// The longest a backup kept under `backup` can hold data after it was taken,
    /// in days: each rule's reach (a backup a day at least, as the timers run them),
    /// and the monthly rule's months counted as 31 days.
    /// - Returns: the days and the backup.yaml setting that gives them.
    public static func backupHorizon(_ backup: BackupPolicy) -> (days: Int, setting: String) {
        let reaches = [
            (backup.keepLast, "keep.last"), (backup.floor, "keep.floor"), (backup.daily, "keep.daily"), (backup.weekly * 7, "keep.weekly"),
            (backup.monthly * 31, "keep.monthly"),
        ]
        let longest = reaches.max { $0.0 < $1.0 }!
        return (longest.0, longest.1)
    }

    /// Refuses a pair of policies whose backups would keep purged data longer than
    /// the retention policy's stated margin: every backup must be pruned within
    /// `backups.margin_days` of the purges it outlives.
    /// - Parameters:
    ///   - retention: the retention policy document.
    ///   - backup: the backup policy document.
    /// - Throws: ``ConfigurationError`` at `backups.margin_days`, naming the backup
    ///   setting (with its file and line) that keeps backups too long; or either
    ///   document's own error.
    public static func checkBackups(retention: SettingsDocument, backup: SettingsDocument) throws {
        let policy = try parse(retention)
        let backups = try BackupPolicy.parse(backup)
        let (days, setting) = backupHorizon(backups)
        guard days > policy.backups.marginDays else { return }
        let keep = try backup.root(allowedKeys: ["keep"]).mapping("keep", allowedKeys: ["last", "daily", "weekly", "monthly", "floor"])
        let settingName = String(setting.dropFirst("keep.".count))
        let place = keep.map { mapping -> String in
            let located = mapping.error(settingName, "")
            return [located.file, located.line.map(String.init), located.column.map(String.init)].compactMap { $0 }.joined(separator: ":")
        } ?? backup.file
        let section = try retention.root(allowedKeys: classes).mapping("backups", allowedKeys: ["margin_days", "justification"])!
        let position = section.error("margin_days", "")
        throw ConfigurationError(
            .inconsistentPolicies, file: position.file, line: position.line, column: position.column,
            reason: "backups.margin_days: backups would keep purged data up to \(days) days (\(place): \(setting) gives \(days) days), "
                + "more than the \(policy.backups.marginDays) days this policy allows; lower \(setting) in the backup policy or raise backups.margin_days, "
                + "with its justification")
    }
}

/// Time zone names as the host's tz database knows them.
enum TimeZoneName {
    static func isKnown(_ name: String) -> Bool { !name.isEmpty && TimeZone(identifier: name) != nil }
}
