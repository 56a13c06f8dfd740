public import ErrorConventions

/// Why a subject-request operation was refused or failed: a stable code (the string
/// logs, scripts and the runbook match), a message saying what was wrong and what
/// to do, never patient data. Equal on its code. Nothing was written when one is
/// thrown: every operation runs in one transaction.
public struct SubjectRequestError: CodedError, CustomDebugStringConvertible {
    /// A stable identifier.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `dsar.unknown_patient`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// No request has this number.
        public static let unknownRequest = Code("dsar.unknown_request")
        /// No patient matches the identity given (through the blind-index search).
        public static let unknownPatient = Code("dsar.unknown_patient")
        /// Several patients match: the INS or the patient's id decides.
        public static let ambiguousPatient = Code("dsar.ambiguous_patient")
        /// The patient was pseudonymised by retention: nothing identifies them any more.
        public static let patientPseudonymised = Code("dsar.patient_pseudonymised")
        /// No staff account has this login name.
        public static let unknownStaff = Code("dsar.unknown_staff")
        /// The requester's identity has not been checked yet.
        public static let identityNotChecked = Code("dsar.identity_not_checked")
        /// The request's access pack was already released.
        public static let packAlreadyReleased = Code("dsar.pack_already_released")
        /// No pack was approved for the request.
        public static let packNotApproved = Code("dsar.pack_not_approved")
        /// Too early: the 48 hours of reflection (CSP L1111-7) have not passed.
        public static let tooEarly = Code("dsar.too_early")
        /// The request's deadline is already past and the DPO did not acknowledge it.
        public static let deadlinePast = Code("dsar.deadline_past")
        /// The extension notice comes after the first month (GDPR art. 12(3)).
        public static let extensionTooLate = Code("dsar.extension_too_late")
        /// A date or time is malformed, impossible or out of range.
        public static let invalidDate = Code("dsar.invalid_date")
        /// An argument is malformed or missing.
        public static let invalidArgument = Code("dsar.invalid_argument")
        /// The operation does not apply to this kind of request.
        public static let wrongKind = Code("dsar.wrong_kind")
        /// The request is closed.
        public static let closed = Code("dsar.closed")
        /// The request is not in a state that allows the operation.
        public static let notReady = Code("dsar.not_ready")
        /// The text to redact is not in the named value.
        public static let redactionNotFound = Code("dsar.redaction_not_found")
        /// The staff account is still active.
        public static let staffActive = Code("dsar.staff_active")
        /// The journal has no signed checkpoint yet, or has not sequenced what is needed.
        public static let journalNotReady = Code("dsar.journal_not_ready")
        /// A stored evidence step does not chain: the evidence file was altered.
        public static let evidenceBroken = Code("dsar.evidence_broken")
        /// The master key is needed and none was given.
        public static let masterKeyRequired = Code("dsar.master_key_required")
        /// A queued job failed or did not finish in time.
        public static let jobFailed = Code("dsar.job_failed")
        /// A stored value is not what this build expects.
        public static let internalError = Code("dsar.internal_error")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What was wrong and what to do; never patient data.
    public let message: String
    /// Details for debugging (may name values); never logged by default.
    public let detail: String?

    /// An error with `code` and `message`.
    public init(_ code: Code, _ message: String, detail: String? = nil) {
        self.code = code
        self.message = message
        self.detail = detail
    }
    public var debugDescription: String { detail.map { "\(description) [\($0)]" } ?? description }
}
