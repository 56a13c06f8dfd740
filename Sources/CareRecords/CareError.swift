public import ErrorConventions

/// An error a care-service request ends with: a stable code, the HTTP status it
/// maps to, and a message that never contains patient data.
public struct CareError: CodedError {
    /// A stable identifier, returned to clients as `error.code` and journaled as the event's reason.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `care.forbidden`.
        public let rawValue: String
        /// The HTTP status.
        public let status: Int
        private init(_ rawValue: String, _ status: Int) {
            self.rawValue = rawValue
            self.status = status
        }

        public static let malformedJSON = Code("request.malformed_json", 400)
        public static let unknownField = Code("request.unknown_field", 400)
        public static let invalidField = Code("request.invalid_field", 400)
        public static let missingField = Code("request.missing_field", 400)
        public static let invalidQuery = Code("request.invalid_query", 400)
        public static let duplicateField = Code("request.duplicate_field", 400)
        public static let tooLarge = Code("request.too_large", 413)
        public static let unsupportedMediaType = Code("request.unsupported_media_type", 415)
        public static let noRoute = Code("request.no_route", 404)
        public static let methodNotAllowed = Code("request.method_not_allowed", 405)
        public static let methodOverride = Code("request.method_override", 400)
        public static let malformedHTTP = Code("request.malformed_http", 400)
        public static let purposeRequired = Code("request.purpose_required", 400)
        public static let invalidPurpose = Code("request.invalid_purpose", 400)
        public static let authenticationRequired = Code("auth.required", 401)
        public static let invalidToken = Code("auth.invalid_token", 401)
        public static let sessionExpired = Code("auth.session_expired", 401)
        public static let invalidCredentials = Code("auth.invalid_credentials", 401)
        public static let accountLocked = Code("auth.account_locked", 401)
        public static let throttled = Code("auth.throttled", 429)
        public static let forbidden = Code("care.forbidden", 403)
        public static let notFound = Code("care.not_found", 404)
        public static let conflict = Code("care.conflict", 409)
        /// The record was pseudonymised at the end of its retention term: it is shown, never changed.
        public static let pseudonymised = Code("care.pseudonymised", 409)
        /// The patient's processing is restricted (GDPR art. 18): a ground of art. 18(2) must be named; exports are refused.
        public static let restricted = Code("care.restricted", 403)
        public static let journalUnavailable = Code("journal.unavailable", 503)
        public static let internalError = Code("internal.error", 500)
    }

    /// What kind of error this is.
    public let code: Code
    /// A data-free explanation for the client.
    public let message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
