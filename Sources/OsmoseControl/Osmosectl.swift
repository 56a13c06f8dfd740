public import ArgumentParser

/// `osmosectl`: the command line for the people who run Osmose. One subcommand
/// group per role; `--json` on every listing.
public struct Osmosectl: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "osmosectl",
        abstract: "Operate the Osmose compliance suite: database, policies, journal, keys, backups, retention, subject requests.",
        discussion: """
            Configuration is read from --config, else $OSMOSE_CONFIG, else /etc/osmose/osmose.yaml.

            EXIT STATUS
              0   success
              1   the operation failed; the message says why
              3   a configuration or policy file is invalid (the message names file and line)
              4   the database cannot be reached or refused the operation
              5   an integrity problem was found (e.g. an applied migration was edited)
              6   the master key is missing or is not the one that wrapped the keyring
              64  the command line is wrong (unknown option, missing argument)
            """,
        version: "osmosectl \(versionString)",
        subcommands: [DatabaseCommand.self, TeamsCommand.self, UsersCommand.self, KeysCommand.self, JournalCommand.self, BackupCommand.self, RetentionCommand.self, SubjectRequestCommand.self, PolicyCommand.self, ConfigCommand.self, SetupCommand.self, DiagnoseCommand.self, VersionCommand.self]
    )

    public init() {}
}

extension Osmosectl {
    /// Parses `arguments` (the process's when nil) and runs the chosen subcommand.
    /// The library never ends the process: the executable hands what this throws to
    /// ArgumentParser, which prints it and ends the process with the documented
    /// status (an `ExitCode` carries its own; a command-line error is 64; help and
    /// version are 0). (Written out because overload resolution from a top-level
    /// `main.swift` picks ArgumentParser's synchronous `main()`.)
    /// - Throws: the parse error, or what the command throws.
    public static func runFromCommandLine(_ arguments: [String]? = nil) async throws {
        var command = try parseAsRoot(arguments)
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    }
}
