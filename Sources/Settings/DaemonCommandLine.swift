public import Foundation

/// The command line every daemon accepts: `--help`, `--version` and `--config PATH`.
public enum DaemonCommandLine {
    /// Prints the usage or the version and exits when asked to; otherwise returns the
    /// configuration path: `--config`, else `$OSMOSE_CONFIG`, else the default path.
    /// - Parameters:
    ///   - program: the executable's name, e.g. `osmose-journald`.
    ///   - summary: what the daemon does, for `--help` (lines after the usage line).
    public static func configurationPath(
        program: String, summary: String, arguments: [String] = CommandLine.arguments,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> String {
        if arguments.contains("--help") || arguments.contains("-h") {
            print("usage: \(program) [--config PATH]\n\n\(summary)\nConfiguration: --config, else $OSMOSE_CONFIG, else \(SuiteConfiguration.defaultPath).")
            exit(0)
        }
        if arguments.contains("--version") {
            print("\(program) \(SuiteVersion.current)")
            exit(0)
        }
        if let index = arguments.firstIndex(of: "--config"), index + 1 < arguments.count { return arguments[index + 1] }
        return environment["OSMOSE_CONFIG"] ?? SuiteConfiguration.defaultPath
    }
}
