public import ErrorConventions

/// An error of the journal's daemon or tools, equal on its code.
public struct JournalError: CodedError {
    /// A stable identifier for the kind of failure.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `journal.witness`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// The journal's stored state contradicts itself (head, tiles, last checkpoint).
        public static let inconsistentState = Code("journal.inconsistent_state")
        /// Another process appended to the journal at the same time.
        public static let concurrentWriter = Code("journal.concurrent_writer")
        /// A witness directory cannot be written, or holds checkpoints the database lacks.
        public static let witness = Code("journal.witness")
        /// The signing key is missing, malformed or not named after the origin.
        public static let signingKey = Code("journal.signing_key")
        /// No such entry or checkpoint.
        public static let notFound = Code("journal.not_found")
        /// An argument is out of range or malformed.
        public static let invalidArgument = Code("journal.invalid_argument")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What went wrong and what to do; never patient data or key material.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
