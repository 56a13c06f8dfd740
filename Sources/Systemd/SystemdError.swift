public import ErrorConventions
import Glibc

/// An error talking to the service manager.
public struct SystemdError: CodedError {
    /// A stable identifier for the kind of failure.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `systemd.notify_failed`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// `$NOTIFY_SOCKET` is malformed or a message could not be sent.
        public static let notifyFailed = Code("systemd.notify_failed")
        /// `$LISTEN_FDS` or `$LISTEN_FDNAMES` is malformed.
        public static let invalidSocketActivation = Code("systemd.invalid_socket_activation")
        /// A credential is missing, unreadable or its name is not a plain file name.
        public static let credentialUnavailable = Code("systemd.credential_unavailable")
        /// A listening socket's group does not exist, this process is not in it, or the
        /// socket could not be given to it.
        public static let socketGroup = Code("systemd.socket_group")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What went wrong and what to check.
    public let message: String

    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }
