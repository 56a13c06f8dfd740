/// The settings every Osmose executable reads from one file
/// (`/etc/osmose/osmose.yaml`, or the path in `$OSMOSE_CONFIG` or `--config`).
///
/// See `docs/configuration.md` for every key. Unknown keys are refused so that a
/// typo never silently falls back to a default.
public struct SuiteConfiguration: Hashable, Sendable {
    /// Where the file is looked for when neither `--config` nor `$OSMOSE_CONFIG` names one.
    public static let defaultPath = "/etc/osmose/osmose.yaml"

    /// How to reach PostgreSQL.
    public struct Database: Hashable, Sendable {
        /// A libpq connection string; empty means libpq's environment (`PGHOST`, `PGSERVICE`…).
        public var connection: String
        /// The most connections each process opens.
        public var poolSize: Int
    }

    /// Log output.
    public struct Logging: Hashable, Sendable {
        /// The least severe level written: trace, debug, info, notice, warning, error or critical.
        public var level: String
    }

    /// Filesystem locations.
    public struct Paths: Hashable, Sendable {
        /// The daemons' state directory (witness checkpoints, archives, staging).
        public var state: String
        /// The policy files' directory.
        public var policies: String
    }

    /// Database settings.
    public var database: Database
    /// Logging settings.
    public var logging: Logging
    /// Paths.
    public var paths: Paths

    /// Every setting at its default.
    public static let defaults = SuiteConfiguration(
        database: Database(connection: "", poolSize: 8),
        logging: Logging(level: "info"),
        paths: Paths(state: "/var/lib/osmose", policies: "/etc/osmose/policies"))

    /// Reads and validates the file at `path`.
    /// - Throws: ``ConfigurationError`` with the file, line and reason.
    public static func load(path: String) throws -> SuiteConfiguration {
        try parse(SettingsDocument(contentsOf: path))
    }

    /// Validates an already parsed document.
    public static func parse(_ document: SettingsDocument) throws -> SuiteConfiguration {
        var configuration = defaults
        let root = try document.root(allowedKeys: ["database", "logging", "paths"])
        if let database = try root.mapping("database", allowedKeys: ["connection", "pool_size"]) {
            configuration.database.connection = try database.optionalString("connection") ?? ""
            configuration.database.poolSize = try database.integer("pool_size", in: 1...200, default: 8)
        }
        if let logging = try root.mapping("logging", allowedKeys: ["level"]) {
            configuration.logging.level = try logging.choice(
                "level", from: ["trace", "debug", "info", "notice", "warning", "error", "critical"], default: "info")
        }
        if let paths = try root.mapping("paths", allowedKeys: ["state", "policies"]) {
            for key in ["state", "policies"] {
                if let value = try paths.optionalString(key), !value.hasPrefix("/") {
                    throw paths.error(key, "must be an absolute path")
                }
            }
            configuration.paths.state = try paths.optionalString("state") ?? defaults.paths.state
            configuration.paths.policies = try paths.optionalString("policies") ?? defaults.paths.policies
        }
        return configuration
    }
}
