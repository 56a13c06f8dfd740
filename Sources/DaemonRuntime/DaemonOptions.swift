public import ArgumentParser
public import Foundation
public import Journal
public import Settings

/// The options every daemon takes: `--config PATH`, else `$OSMOSE_CONFIG`, else
/// `/etc/osmose/osmose.yaml`. (`--help` and `--version` come with the command's
/// configuration, ``ArgumentParser/CommandConfiguration/daemon(_:abstract:discussion:exitStatuses:statusDetails:subcommands:)``.)
public struct DaemonOptions: ParsableArguments, Sendable {
    /// The configuration file given on the command line, if any.
    @Option(name: .long, help: ArgumentHelp("The configuration file (else $OSMOSE_CONFIG, else \(SuiteConfiguration.defaultPath)).", valueName: "path"))
    public var config: String?

    /// Options as given on no command line: the path comes from the environment or the default.
    public init() {}

    /// The configuration file to read: `--config`, else `$OSMOSE_CONFIG`, else
    /// ``Settings/SuiteConfiguration/defaultPath``.
    public func configurationPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        config ?? environment["OSMOSE_CONFIG"] ?? SuiteConfiguration.defaultPath
    }

    /// Reads and validates the configuration file.
    /// - Throws: ``Settings/ConfigurationError`` (exit status 3) naming the file, line and reason.
    public func loadConfiguration(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SuiteConfiguration {
        try SuiteConfiguration.load(path: configurationPath(environment: environment))
    }

    /// The sentence each daemon's `--help` says about its configuration file.
    public static let configurationHelp =
        "Configuration: --config, else $OSMOSE_CONFIG, else \(SuiteConfiguration.defaultPath)."
}

extension CommandConfiguration {
    /// The command configuration of one of the suite's daemons: its name, what it does,
    /// where its configuration comes from, the exit statuses it can end with (from
    /// the one table, ``ExitStatus``), and `--version` printing `program version`.
    /// - Parameters:
    ///   - program: the daemon.
    ///   - abstract: one line saying what it does.
    ///   - discussion: more about it, if anything, before the configuration and exit statuses.
    ///   - exitStatuses: the statuses it can end with.
    ///   - statusDetails: the daemon's own wording of some statuses.
    ///   - subcommands: its subcommands, if any.
    public static func daemon(
        _ program: SuiteProgram, abstract: String, discussion: String? = nil, exitStatuses: [ExitStatus],
        statusDetails: [ExitStatus: String] = [:], subcommands: [any ParsableCommand.Type] = []
    ) -> CommandConfiguration {
        let sections = [discussion, DaemonOptions.configurationHelp, ExitStatus.helpSection(exitStatuses, details: statusDetails)]
        return CommandConfiguration(
            commandName: program.rawValue, abstract: abstract, discussion: sections.compactMap { $0 }.joined(separator: "\n\n"),
            version: "\(program.rawValue) \(SuiteVersion.current)", subcommands: subcommands)
    }
}
