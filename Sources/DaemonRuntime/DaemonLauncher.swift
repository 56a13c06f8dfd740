public import ArgumentParser
import Foundation
public import Systemd

/// Starts a daemon from its command line and says which status the process exits
/// with: the one path from an error to a documented exit status (``ExitStatus``).
/// Each `Sources/osmose-*/main.swift` calls it and exits with what it returns.
public enum DaemonLauncher {
    /// Parses `arguments` as `Command` (or one of its subcommands) and runs it.
    ///
    /// `--help` and `--version` print to standard output and return 0; a wrong command
    /// line prints ArgumentParser's message and returns 64; an `ExitCode` thrown on
    /// purpose is returned as it is. Any other error ends the run with one line
    /// `program: error` on standard error, the failure told to systemd
    /// (`STATUS=failed: …`, `ERRNO=` the status), and the error's ``ExitStatus``.
    /// - Parameters:
    ///   - command: the daemon's root command.
    ///   - arguments: the arguments after the program name; the process's when nil.
    ///   - notifier: where the failure is reported.
    /// - Returns: the status the process should exit with.
    public static func run<Command: ParsableCommand>(
        _ command: Command.Type, arguments: [String]? = nil, notifier: SystemdNotifier = SystemdNotifier()
    ) async -> Int32 {
        do {
            var parsed = try Command.parseAsRoot(arguments)
            if var asynchronous = parsed as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try parsed.run()
            }
            return ExitStatus.success.code
        } catch {
            if let code = commandLineOutcome(of: error, for: Command.self) { return code }
            let status = ExitStatus(for: error)
            FileHandle.standardError.write(Data("\(Command.configuration.commandName ?? "osmose"): \(error)\n".utf8))
            try? notifier.failing(error, status: status.code)
            return status.code
        }
    }

    /// The status of what ArgumentParser handles itself (help and version requests,
    /// a wrong command line, an `ExitCode`), after printing its message; nil for the
    /// errors the daemon's work throws.
    private static func commandLineOutcome<Command: ParsableCommand>(of error: any Error, for _: Command.Type) -> Int32? {
        guard !(error is any ExitStatusProviding) else { return nil }
        let code = Command.exitCode(for: error)
        guard code != .failure || error is ExitCode else { return nil }
        let message = Command.fullMessage(for: error)
        if !message.isEmpty { (code == .success ? FileHandle.standardOutput : FileHandle.standardError).write(Data((message + "\n").utf8)) }
        return code.rawValue
    }
}
