/// How many backups osmose-backupd keeps (`policies/backup.yaml`).
public struct BackupPolicy: Hashable, Sendable {
    /// The newest N backups.
    public var keepLast: Int
    /// The newest backup of each of the last N days.
    public var daily: Int
    /// The newest backup of each of the last N ISO weeks.
    public var weekly: Int
    /// The newest backup of each of the last N months.
    public var monthly: Int
    /// Never fewer backups than this.
    public var floor: Int

    /// A policy with these values.
    public init(keepLast: Int, daily: Int, weekly: Int, monthly: Int, floor: Int) {
        self.keepLast = keepLast
        self.daily = daily
        self.weekly = weekly
        self.monthly = monthly
        self.floor = floor
    }

    /// The defaults (those of the shipped file).
    public static let defaults = BackupPolicy(keepLast: 4, daily: 7, weekly: 5, monthly: 12, floor: 2)

    /// Reads and validates `policies/backup.yaml`.
    /// - Throws: ``ConfigurationError`` with the file, line and reason.
    public static func load(path: String) throws -> BackupPolicy {
        try parse(SettingsDocument(contentsOf: path))
    }

    /// Validates an already parsed document.
    public static func parse(_ document: SettingsDocument) throws -> BackupPolicy {
        let root = try document.root(allowedKeys: ["keep"])
        guard let keep = try root.mapping("keep", allowedKeys: ["last", "daily", "weekly", "monthly", "floor"]) else {
            throw root.error("keep", "the keep section is required")
        }
        let policy = BackupPolicy(
            keepLast: try keep.integer("last", in: 0...1000, default: defaults.keepLast),
            daily: try keep.integer("daily", in: 0...3660, default: defaults.daily),
            weekly: try keep.integer("weekly", in: 0...520, default: defaults.weekly),
            monthly: try keep.integer("monthly", in: 0...240, default: defaults.monthly),
            // At least one: pruning everything would leave nothing to restore.
            floor: try keep.integer("floor", in: 1...1000, default: defaults.floor))
        return policy
    }
}
