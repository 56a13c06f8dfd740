import Backup
import DaemonRuntime
import ErrorConventions

/// Why an `osmose-backupd` command did not do its work, with the documented status
/// the process exits with. Its description is the one line printed after
/// `osmose-backupd: `.
struct BackupCommandError: CodedError, ExitStatusProviding {
    /// A stable identifier for the kind of failure.
    struct Code: ErrorCode {
        /// The stable string, e.g. `backupd.failed`.
        let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// A setting the command needs is missing or wrong: exit status 3.
        static let invalidSetting = Code("backupd.invalid_setting")
        /// The work failed (PostgreSQL keeps a WAL segment and retries): exit status 1.
        static let failed = Code("backupd.failed")
        /// The store holds something the suite did not sign, or not what it signed: exit status 5.
        static let integrity = Code("backupd.integrity")
        /// No backup-signing key, or one that cannot be read: exit status 6.
        static let keyUnavailable = Code("backupd.key_unavailable")
    }

    /// What kind of failure this is.
    let code: Code
    /// What went wrong, and what to do where useful.
    let message: String
    /// The error that caused it, if any.
    let underlying: (any Error)?

    init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    var exitStatus: ExitStatus {
        switch code {
        case .invalidSetting: .invalidConfiguration
        case .integrity: .integrity
        case .keyUnavailable: .keyUnavailable
        default: .failure
        }
    }
    var description: String { message }

    /// Runs `body`; whatever it throws becomes an error of `code` (of `.integrity`
    /// for a ``BackupIntegrityError``), its message `context: error`, or the error's
    /// own when there is no context.
    static func wrapping<Result>(_ code: Code, _ context: String? = nil, _ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch let error as BackupCommandError {
            throw error
        } catch {
            let kind = error is BackupIntegrityError ? .integrity : code
            throw BackupCommandError(kind, context.map { "\($0): \(error)" } ?? "\(error)", underlying: error)
        }
    }
}
