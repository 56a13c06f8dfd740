public import ErrorConventions

/// An error of the staff accounts: a stable code and a message that never carries
/// a password, a code or a seed. Equal on its code.
public struct StaffError: CodedError {
    /// A stable identifier, journaled as the event's reason and shown in the console's error pages.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `staff.invalid_credentials`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// The username or the password is wrong (one code for both: usernames are not revealed).
        public static let invalidCredentials = Code("staff.invalid_credentials")
        /// Too many failures in a row: the account is locked for a while.
        public static let accountLocked = Code("staff.account_locked")
        /// The TOTP code or recovery code is wrong, or was already used.
        public static let invalidSecondFactor = Code("staff.invalid_second_factor")
        /// The session token is unknown, revoked or belongs to a disabled account.
        public static let invalidSession = Code("staff.invalid_session")
        /// The session passed its idle or absolute limit.
        public static let sessionExpired = Code("staff.session_expired")
        /// A field is malformed (username, display name, password length, role).
        public static let invalidField = Code("staff.invalid_field")
        /// No such account.
        public static let notFound = Code("staff.not_found")
        /// The TOTP seed could not be opened: the console key is not the one that sealed it.
        public static let sealedSeed = Code("staff.sealed_seed")
        /// The enrolment is not in the state the step needs (no pending seed, already enrolled).
        public static let enrolmentState = Code("staff.enrolment_state")
    }

    /// What kind of error this is.
    public let code: Code
    /// A data-free explanation.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
