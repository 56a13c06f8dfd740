public import ErrorConventions

/// An error from the database layer.
///
/// Equal on ``code`` alone. ``description`` is safe to log: it carries the code,
/// the SQLSTATE and names of schema objects, never the server's message text, which
/// can quote values (`invalid input syntax for type date: "…"`). The full server
/// message and detail are in ``debugDescription`` only.
public struct StoreError: CodedError, CustomDebugStringConvertible {
    /// A stable identifier for the kind of failure.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `store.query_failed`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// The server could not be reached or refused the connection.
        public static let connectionFailed = Code("store.connection_failed")
        /// The connection broke while in use.
        public static let connectionLost = Code("store.connection_lost")
        /// The server rejected a statement; see ``StoreError/sqlState``.
        public static let queryFailed = Code("store.query_failed")
        /// A transaction kept failing with serialization or deadlock errors after every retry.
        public static let retriesExhausted = Code("store.retries_exhausted")
        /// A COPY did not complete.
        public static let copyFailed = Code("store.copy_failed")
        /// A result value could not be read as the type asked for.
        public static let decodingFailed = Code("store.decoding_failed")
        /// The pool was shut down or its wait was cancelled.
        public static let poolClosed = Code("store.pool_closed")
        /// A connection string or identifier was malformed.
        public static let invalidArgument = Code("store.invalid_argument")
    }

    /// What kind of failure this is.
    public let code: Code
    /// The five-character SQLSTATE reported by PostgreSQL, when there is one.
    public let sqlState: String?
    /// A short, data-free explanation.
    public let message: String
    /// Names of the schema objects involved (constraint, table, column), from the server's error fields.
    public let objects: [String: String]
    /// The server's own message and detail; may quote values, so never logged by default.
    public let serverMessage: String?

    init(
        _ code: Code, _ message: String, sqlState: String? = nil, objects: [String: String] = [:],
        serverMessage: String? = nil
    ) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.objects = objects
        self.serverMessage = serverMessage
    }

    /// True for SQLSTATE 40001 (serialization failure) and 40P01 (deadlock): the
    /// transaction may succeed if run again.
    public var isTransient: Bool { sqlState == "40001" || sqlState == "40P01" }
    /// True for SQLSTATE 23505.
    public var isUniqueViolation: Bool { sqlState == "23505" }

    public var description: String {
        var text = "\(code): \(message)"
        if let sqlState {
            text += " (SQLSTATE \(sqlState)"
            if let name = Self.conditionNames[sqlState] { text += " \(name)" }
            text += ")"
        }
        for key in objects.keys.sorted() { text += " \(key)=\(objects[key]!)" }
        return text
    }

    public var debugDescription: String {
        guard let serverMessage else { return description }
        return "\(description) [server: \(serverMessage)]"
    }

    /// Names of the conditions an operator most often meets (PostgreSQL Appendix A).
    static let conditionNames: [String: String] = [
        "23505": "unique_violation", "23503": "foreign_key_violation", "23502": "not_null_violation",
        "23514": "check_violation", "22P02": "invalid_text_representation", "22007": "invalid_datetime_format",
        "22008": "datetime_field_overflow", "42501": "insufficient_privilege", "42P01": "undefined_table",
        "42703": "undefined_column", "42601": "syntax_error", "40001": "serialization_failure",
        "40P01": "deadlock_detected", "57P01": "admin_shutdown", "08006": "connection_failure",
        "25P02": "in_failed_sql_transaction", "P0001": "raise_exception", "55P03": "lock_not_available",
        "3D000": "invalid_catalog_name", "28P01": "invalid_password", "28000": "invalid_authorization_specification",
    ]
}
