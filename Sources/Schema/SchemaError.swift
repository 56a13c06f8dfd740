public import ErrorConventions

/// An error applying or inspecting migrations.
///
/// Equal on ``code`` alone; the description names the migration file, never data.
public struct SchemaError: CodedError {
    /// A stable identifier for the kind of failure.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `schema.migration_modified`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// A migration file's name does not follow `NNNN_name.sql`, or two share a version.
        public static let invalidMigrationFile = Code("schema.invalid_migration_file")
        /// A migration already applied differs from the file now shipped.
        public static let migrationModified = Code("schema.migration_modified")
        /// The database has a migration this build does not know: it is newer than the build.
        public static let unknownMigration = Code("schema.unknown_migration")
        /// A migration's SQL failed; it was rolled back.
        public static let migrationFailed = Code("schema.migration_failed")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What went wrong and what to do, naming the file.
    public let message: String
    /// The underlying error (a ``Store/StoreError`` for a failed migration).
    public let underlying: (any Error & Sendable)?

    init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        guard let underlying else { return "\(code): \(message)" }
        return "\(code): \(message): \(underlying)"
    }
}
