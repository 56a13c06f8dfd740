public import ErrorConventions

/// A configuration or policy file that cannot be used, with where and why.
///
/// Its description has the form compilers use, `file:line:column: reason`, so an
/// editor can jump to it and a sysadmin sees at once what to change.
public struct ConfigurationError: CodedError {
    /// A stable identifier for the kind of problem.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `config.unknown_setting`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// The file cannot be read.
        public static let unreadable = Code("config.unreadable")
        /// The file is not well-formed YAML.
        public static let malformed = Code("config.malformed")
        /// A key that no setting has (often a typo).
        public static let unknownSetting = Code("config.unknown_setting")
        /// A required setting is absent.
        public static let missingSetting = Code("config.missing_setting")
        /// A value of the wrong type or out of range.
        public static let invalidValue = Code("config.invalid_value")
        /// Two policy files contradict each other (retention and backups).
        public static let inconsistentPolicies = Code("config.inconsistent_policies")
    }

    /// What kind of problem this is.
    public let code: Code
    /// The file's path.
    public let file: String
    /// The 1-based line, when known.
    public let line: Int?
    /// The 1-based column, when known.
    public let column: Int?
    /// What is wrong and, where useful, what is expected.
    public let reason: String

    /// Creates an error.
    public init(_ code: Code, file: String, line: Int?, column: Int?, reason: String) {
        self.code = code
        self.file = file
        self.line = line
        self.column = column
        self.reason = reason
    }

    /// The reason, for ``CodedError``; the description adds where.
    public var message: String { reason }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        return "\(location): \(reason) [\(code)]"
    }
}
