import ArgumentParser
import Settings
import Foundation

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "The configuration file every executable reads.",
        subcommands: [Check.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the configuration and print the settings in force (passwords hidden).",
            discussion: "Exits 3 and names file, line and reason when the file is invalid.")

        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print the settings as JSON.") var json = false

        struct Settings: Encodable {
            let databaseConnection: String
            let databasePoolSize: Int
            let loggingLevel: String
            let statePath: String
            let policiesPath: String
        }

        func run() async throws {
            try await reportingFailures {
                let configuration = try options.loadConfiguration()
                let settings = Settings(
                    databaseConnection: redactPassword(configuration.database.connection),
                    databasePoolSize: configuration.database.poolSize, loggingLevel: configuration.logging.level,
                    statePath: configuration.paths.state, policiesPath: configuration.paths.policies)
                if json {
                    try printJSON(settings)
                } else {
                    printTable(["SETTING", "VALUE"], [
                        ["database.connection", settings.databaseConnection.isEmpty ? "(libpq environment)" : settings.databaseConnection],
                        ["database.pool_size", String(settings.databasePoolSize)],
                        ["logging.level", settings.loggingLevel],
                        ["paths.state", settings.statePath],
                        ["paths.policies", settings.policiesPath],
                    ])
                }
            }
        }
    }
}

/// Hides the password of a libpq connection string, in key=value or URI form.
func redactPassword(_ connection: String) -> String {
    var text = connection
    for pattern in [#"password\s*=\s*'(?:[^'\\]|\\.)*'"#, #"password\s*=\s*[^\s']+"#] {
        text = text.replacingOccurrences(of: pattern, with: "password=********", options: .regularExpression)
    }
    return text.replacingOccurrences(of: #"(postgres(?:ql)?://[^:/@\s]+):[^@\s]+@"#, with: "$1:********@", options: .regularExpression)
}
