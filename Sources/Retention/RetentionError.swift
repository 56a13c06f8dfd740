public import ErrorConventions

/// Why a retention operation was refused or failed: a stable code that appears in
/// logs and on the command line, and a message that never carries patient data
/// (identifiers are internal ids, dates and digests).
public struct RetentionError: CausedError {
    /// A stable identifier for the kind of problem.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `retention.plan_modified`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// A malformed argument: a date, an id, a digest, a text out of bounds.
        public static let invalidArgument = Code("retention.invalid_argument")
        /// No such plan, hold, run, certificate or patient.
        public static let notFound = Code("retention.not_found")
        /// The stored plan no longer hashes to the digest recorded for it: it was edited.
        public static let planModified = Code("retention.plan_modified")
        /// The digest given is not the plan's: the approval is for another plan.
        public static let digestMismatch = Code("retention.digest_mismatch")
        /// The plan cannot be approved or applied in its state (a preview, already approved, too old, not approved).
        public static let refused = Code("retention.refused")
        /// Another apply is running.
        public static let busy = Code("retention.busy")
        /// The cold archives cannot be written: no archive directory or recipient, or one is unusable.
        public static let archiveUnavailable = Code("retention.archive_unavailable")
    }

    /// What kind of problem this is.
    public let code: Code
    /// What went wrong and what to do; no patient data.
    public let message: String
    /// The error that caused it, if any (shown only in ``debugDescription``).
    public let underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }
}
