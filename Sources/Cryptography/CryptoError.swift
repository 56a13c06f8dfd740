internal import COpenSSL
public import ErrorConventions

/// An error from the cryptographic layer.
///
/// Equal on ``code`` alone. Neither ``description`` nor ``debugDescription`` ever
/// contains key material or plaintext: the debug form adds only OpenSSL's own
/// error-queue text, which names algorithms and reasons, never data.
public struct CryptoError: CodedError, CustomDebugStringConvertible {
    /// A stable identifier for the kind of failure, as printed in logs and CLI output.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `crypto.authentication_failed`.
        public let rawValue: String

        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// A ciphertext, tag, nonce or associated data did not authenticate.
        public static let authenticationFailed = Code("crypto.authentication_failed")
        /// A key had the wrong length or could not be imported.
        public static let invalidKey = Code("crypto.invalid_key")
        /// A nonce had the wrong length.
        public static let invalidNonce = Code("crypto.invalid_nonce")
        /// A parameter (length, cost factor, input size) is out of range.
        public static let invalidParameter = Code("crypto.invalid_parameter")
        /// A key agreement produced the all-zero secret (a low-order public key).
        public static let weakPublicKey = Code("crypto.weak_public_key")
        /// The system random generator or OpenSSL itself failed.
        public static let providerFailure = Code("crypto.provider_failure")
    }

    /// What kind of failure this is.
    public let code: Code
    /// A short explanation that is safe to log.
    public let message: String
    /// OpenSSL's error queue at the time of failure, if any (algorithm and reason names only).
    public let underlying: String?

    init(_ code: Code, _ message: String, underlying: String? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    /// Builds an error for a failed OpenSSL call and drains OpenSSL's per-thread error queue.
    static func openSSL(_ message: String, code: Code = .providerFailure) -> CryptoError {
        CryptoError(code, message, underlying: drainOpenSSLErrors())
    }
    public var debugDescription: String {
        guard let underlying, !underlying.isEmpty else { return description }
        return "\(description) [openssl: \(underlying)]"
    }
}

/// Empties OpenSSL's thread-local error queue, returning its entries joined by "; ".
func drainOpenSSLErrors() -> String? {
    var messages: [String] = []
    while true {
        let error = ERR_get_error()
        if error == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(error, &buffer, buffer.count)
        messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return messages.isEmpty ? nil : messages.joined(separator: "; ")
}
