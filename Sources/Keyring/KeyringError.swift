public import ErrorConventions

/// An error from the keyring: a missing or wrong master key, an unknown key id, a
/// ciphertext that does not decrypt where it is.
///
/// Never carries key material or plaintext.
public struct KeyringError: CodedError {
    /// A stable identifier for the kind of failure.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `keyring.wrong_master_key`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// The master key file is missing, unreadable or not 32 bytes.
        public static let masterKeyUnavailable = Code("keyring.master_key_unavailable")
        /// The master key is not the one that wrapped the data keys.
        public static let wrongMasterKey = Code("keyring.wrong_master_key")
        /// No primary key exists for a purpose: run `osmosectl keys init`.
        public static let noPrimaryKey = Code("keyring.no_primary_key")
        /// A ciphertext names a key id the keyring does not hold (or that was destroyed).
        public static let unknownKey = Code("keyring.unknown_key")
        /// A ciphertext is malformed, damaged, or was moved to another row or column.
        public static let undecryptable = Code("keyring.undecryptable")
        /// The keys changed since this process loaded them (a rotation): reload and retry.
        public static let staleRing = Code("keyring.stale")
        /// A key operation is not allowed in the key's state, or is refused by policy.
        public static let refused = Code("keyring.refused")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What went wrong and what to do.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

extension KeyringError {
    /// The process's keys are older than the database's.
    public static func staleRing(_ message: String) -> KeyringError { KeyringError(.staleRing, message + ": reload the keyring and retry") }

    /// No primary key exists for `purpose`.
    public static func noPrimary(_ purpose: DataKeyPurpose) -> KeyringError {
        KeyringError(.noPrimaryKey, "no primary \(purpose.rawValue) key: run osmosectl keys init")
    }

    /// The master key could not be obtained from the service manager or configuration.
    public static func credential(_ message: String) -> KeyringError { KeyringError(.masterKeyUnavailable, message) }
}
