/// How often data keys rotate and how hard re-encryption may push the database, as
/// the sysadmin and the security officer decided it (`policies/keys.yaml`). Applied
/// by `osmose-keyd`; `osmosectl keys status` shows the resulting dates.
public struct KeyPolicy: Hashable, Sendable {
    /// Days a primary key of each purpose (`column`, `blind-index`,
    /// `pseudonymisation`) protects new data before it is rotated.
    public var cryptoperiodDays: [String: Int]
    /// Values re-encrypted per second at most, so that a rotation never starves the care service.
    public var maximumValuesPerSecond: Int
    /// Values rewritten per transaction.
    public var batchSize: Int
    /// Hours the previous journal signing key keeps co-signing after a new one became
    /// primary, so that witnesses and auditors that know only the old key keep
    /// accepting checkpoints while they learn the new one.
    public var signingOverlapHours: Int

    /// A policy with these values (validated by ``parse(_:)`` when read from a file).
    public init(cryptoperiodDays: [String: Int], maximumValuesPerSecond: Int, batchSize: Int, signingOverlapHours: Int = 168) {
        self.cryptoperiodDays = cryptoperiodDays
        self.maximumValuesPerSecond = maximumValuesPerSecond
        self.batchSize = batchSize
        self.signingOverlapHours = signingOverlapHours
    }

    /// The defaults: data keys rotate yearly (NIST SP 800-57 Part 1, §5.3.6: a
    /// symmetric data-encryption key's originator-usage period of up to two years;
    /// a year leaves margin), pseudonymisation keys every two years, the journal
    /// signing key every two years (§5.3.6: a private signature key's usage period
    /// is one to three years), with a week of co-signing around a rollover.
    public static let defaults = KeyPolicy(
        cryptoperiodDays: ["column": 365, "blind-index": 365, "pseudonymisation": 730, "journal-signing": 730], maximumValuesPerSecond: 50_000,
        batchSize: 2_000, signingOverlapHours: 168)

    /// Reads and validates `policies/keys.yaml`.
    /// - Throws: ``ConfigurationError`` with the file, line and reason.
    public static func load(path: String) throws -> KeyPolicy {
        try parse(SettingsDocument(contentsOf: path))
    }

    /// Validates an already parsed document.
    public static func parse(_ document: SettingsDocument) throws -> KeyPolicy {
        let root = try document.root(allowedKeys: ["cryptoperiods", "rotation", "journal_signing"])
        guard let periods = try root.mapping("cryptoperiods", allowedKeys: ["column", "blind_index", "pseudonymisation", "journal_signing"]) else {
            throw root.error("cryptoperiods", "the cryptoperiods section is required")
        }
        let rotation = try root.mapping("rotation", allowedKeys: ["max_values_per_second", "batch_size"])
        let signing = try root.mapping("journal_signing", allowedKeys: ["co_signing_hours"])
        func days(_ key: String) throws -> Int {
            // A day at least (a rotation takes time); 5 years at most (NIST SP 800-57's longest period for such keys).
            try periods.integer(key, in: 1...1826, default: defaults.cryptoperiodDays[key.replacingOccurrences(of: "_", with: "-")])
        }
        return KeyPolicy(
            cryptoperiodDays: [
                "column": try days("column"), "blind-index": try days("blind_index"), "pseudonymisation": try days("pseudonymisation"),
                "journal-signing": try days("journal_signing"),
            ],
            maximumValuesPerSecond: try rotation?.integer("max_values_per_second", in: 100...10_000_000, default: defaults.maximumValuesPerSecond)
                ?? defaults.maximumValuesPerSecond,
            batchSize: try rotation?.integer("batch_size", in: 10...100_000, default: defaults.batchSize) ?? defaults.batchSize,
            // 0: retire the old key at osmose-keyd's next run; at most 90 days.
            signingOverlapHours: try signing?.integer("co_signing_hours", in: 0...2160, default: defaults.signingOverlapHours) ?? defaults.signingOverlapHours)
    }
}
