/// How long personal data stays online, as the DPO decided it
/// (`policies/retention.yaml`). Applied by `osmose-retentiond`.
public struct RetentionPolicy: Hashable, Sendable {
    /// Months of access-journal entries kept in the database (12 to 24 per the CNIL's
    /// recommendation for access logs) before a month is archived cold and purged.
    public var journalOnlineMonths: Int
    /// Years a cold journal archive is kept.
    public var journalArchiveYears: Int
    /// Years after a patient's last closed care episode before the record is pseudonymised.
    public var careRecordYears: Int
    /// Whether legal holds (litigation, investigation) suspend purges and pseudonymisation.
    public var honourLegalHolds: Bool

    /// Reads and validates `policies/retention.yaml`.
    /// - Throws: ``ConfigurationError`` with the file, line and reason.
    public static func load(path: String) throws -> RetentionPolicy {
        try parse(SettingsDocument(contentsOf: path))
    }

    /// Validates an already parsed document.
    public static func parse(_ document: SettingsDocument) throws -> RetentionPolicy {
        let root = try document.root(allowedKeys: ["journal", "care_records", "legal_holds"])
        guard let journal = try root.mapping("journal", allowedKeys: ["online_months", "archive_years"]) else {
            throw root.error("journal", "the journal section is required")
        }
        guard let care = try root.mapping("care_records", allowedKeys: ["pseudonymise_after_years"]) else {
            throw root.error("care_records", "the care_records section is required")
        }
        let legalHolds = try root.mapping("legal_holds", allowedKeys: ["honoured"])
        let policy = RetentionPolicy(
            journalOnlineMonths: try journal.integer("online_months", in: 12...24),
            journalArchiveYears: try journal.integer("archive_years", in: 1...100),
            careRecordYears: try care.integer("pseudonymise_after_years", in: 1...100),
            honourLegalHolds: try legalHolds?.boolean("honoured", default: true) ?? true)
        guard policy.journalArchiveYears * 12 >= policy.journalOnlineMonths else {
            throw journal.error("archive_years", "cold archives must be kept at least as long as entries stay online")
        }
        return policy
    }
}
