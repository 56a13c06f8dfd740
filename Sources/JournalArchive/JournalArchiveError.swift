public import ErrorConventions
import Store

/// An error archiving, verifying, purging or destroying a journal month's cold
/// archive; equal on its code. Its description names months, sequence numbers,
/// files and directories, never an entry's content.
public struct JournalArchiveError: CausedError {
    /// A stable identifier for the kind of failure.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `journal_archive.not_archived`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// An argument or setting is malformed or missing (a month, a directory, a recipient, a key).
        public static let invalidArgument = Code("journal_archive.invalid_argument")
        /// The month is not over yet, or no checkpoint covers all its entries yet.
        public static let notReady = Code("journal_archive.not_ready")
        /// The month has no entries in the database (never had, or already purged).
        public static let notOnline = Code("journal_archive.not_online")
        /// The month has no verified archive recorded, or its recorded copies are not all intact.
        public static let notArchived = Code("journal_archive.not_archived")
        /// The archive's term has not ended, or the month is still online.
        public static let notDue = Code("journal_archive.not_due")
        /// What the database holds contradicts itself or the archive (run `osmosectl journal verify`).
        public static let inconsistent = Code("journal_archive.inconsistent")
        /// Writing, copying, reading or removing a file failed.
        public static let file = Code("journal_archive.file")
        /// An archive does not verify (see the verification's problems).
        public static let verification = Code("journal_archive.verification")
        /// The database refused the operation (its message says why).
        public static let refused = Code("journal_archive.refused")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What went wrong and what to do.
    public let message: String
    /// The error underneath, if any (a database or file error).
    public let underlying: (any Error & Sendable)?

    /// An error.
    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }
}

extension JournalArchiveError {
    /// The database's refusal from one of the archive functions of migration 0025,
    /// whose messages name only months, sequence numbers and digests: passed on as
    /// `.refused` with that message. Any other error is returned unchanged.
    static func fromDatabase(_ error: any Error) -> any Error {
        guard let store = error as? StoreError, let message = store.serverMessage,
            message.hasPrefix("journal.archive: ") || message.hasPrefix("journal.purge: ")
        else { return error }
        return JournalArchiveError(.refused, message, underlying: store)
    }
}
