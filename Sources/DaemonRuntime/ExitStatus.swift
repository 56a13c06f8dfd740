public import Journal
public import Keyring
public import Settings
public import Store
public import Systemd

/// The exit statuses of the suite's daemons: one table, documented here, in each
/// daemon's `--help`, and in the runbooks.
///
/// | status | meaning |
/// |---|---|
/// | 0 | stopped cleanly (SIGTERM), or the work is done |
/// | 1 | failed; the message says why |
/// | 3 | a configuration or policy file is invalid (file and line named) |
/// | 4 | the database cannot be reached or refused the work |
/// | 5 | integrity: the stored state contradicts what was signed or witnessed |
/// | 6 | a key is missing or wrong (master key, journal signing key) |
/// | 64 | the command line is wrong (unknown option, missing argument) |
///
/// Units list 3, 5 and 6 in `RestartPreventExitStatus=`: they need a person, not a restart.
public struct ExitStatus: Hashable, Sendable, CustomStringConvertible {
    /// The process's exit status.
    public let code: Int32
    /// What the status means, as `--help` and the runbooks say it.
    public let meaning: String

    private init(_ code: Int32, _ meaning: String) {
        self.code = code
        self.meaning = meaning
    }

    /// 0: stopped cleanly (SIGTERM), or the work is done.
    public static let success = ExitStatus(0, "stopped cleanly (SIGTERM), or the work is done")
    /// 1: failed; the message says why. Every error the table does not name.
    public static let failure = ExitStatus(1, "failed; the message says why")
    /// 3: a configuration or policy file is invalid.
    public static let invalidConfiguration = ExitStatus(3, "a configuration or policy file is invalid (file and line named)")
    /// 4: the database cannot be reached or refused the work.
    public static let databaseUnavailable = ExitStatus(4, "the database cannot be reached or refused the work")
    /// 5: an integrity problem.
    public static let integrity = ExitStatus(5, "integrity: the stored state contradicts what was signed or witnessed")
    /// 6: a key is missing or wrong.
    public static let keyUnavailable = ExitStatus(6, "a key is missing or wrong (master key, journal signing key)")
    /// 64: the command line is wrong (ArgumentParser's `EX_USAGE`).
    public static let usage = ExitStatus(64, "the command line is wrong (unknown option, missing argument)")

    /// Every status, in order.
    public static let all: [ExitStatus] = [.success, .failure, .invalidConfiguration, .databaseUnavailable, .integrity, .keyUnavailable, .usage]

    /// The status a daemon ends with when `error` stops it: the error's own
    /// (``ExitStatusProviding``), else ``failure``.
    public init(for error: any Error) {
        self = (error as? any ExitStatusProviding)?.exitStatus ?? .failure
    }

    public static func == (lhs: ExitStatus, rhs: ExitStatus) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
    public var description: String { "\(code)" }

    /// The `EXIT STATUS` section of a daemon's `--help`: one line for each status it
    /// can end with, in the table's words unless `details` gives the daemon's own.
    /// - Parameters:
    ///   - statuses: the statuses the daemon can end with (the command-line status 64 is added).
    ///   - details: the daemon's wording of a status, e.g. which key 6 is about.
    public static func helpSection(_ statuses: [ExitStatus], details: [ExitStatus: String] = [:]) -> String {
        let listed = all.filter { statuses.contains($0) || $0 == .usage }
        let lines = listed.map { status in
            "  " + "\(status.code)".padding(toLength: 4, withPad: " ", startingAt: 0) + (details[status] ?? status.meaning)
        }
        return (["EXIT STATUS"] + lines).joined(separator: "\n")
    }
}

/// An error that says which documented exit status it stops a daemon with.
///
/// The suite's shared errors conform below; a daemon's own error type conforms
/// where it is declared. Any other error ends the process with ``ExitStatus/failure``.
public protocol ExitStatusProviding: Error {
    /// The status the process exits with when this error stops it.
    var exitStatus: ExitStatus { get }
}

extension ConfigurationError: ExitStatusProviding {
    /// 3: a configuration or policy file is invalid.
    public var exitStatus: ExitStatus { .invalidConfiguration }
}

extension SystemdError: ExitStatusProviding {
    /// 3 for a socket group that does not exist or is not the daemon's (the unit or
    /// the configuration must change; a restart cannot help); else 1.
    public var exitStatus: ExitStatus { code == .socketGroup ? .invalidConfiguration : .failure }
}

extension StoreError: ExitStatusProviding {
    /// 4: the database cannot be reached or refused the work.
    public var exitStatus: ExitStatus { .databaseUnavailable }
}

extension KeyringError: ExitStatusProviding {
    /// 6: the master key is missing or wrong, or the keyring cannot serve the daemon.
    public var exitStatus: ExitStatus { .keyUnavailable }
}

extension JournalError: ExitStatusProviding {
    /// 6 for a signing key missing, malformed or not the keyring's; 5 when the stored
    /// tree, the witnesses or another writer contradict the journal; else 1.
    public var exitStatus: ExitStatus {
        switch code {
        case .signingKey: .keyUnavailable
        case .inconsistentState, .witness, .concurrentWriter: .integrity
        default: .failure
        }
    }
}
