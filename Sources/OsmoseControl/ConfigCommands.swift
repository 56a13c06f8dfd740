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
            let journalOrigin: String
            let journalDatabase: String
            let journalSigningKeyFiles: [String]
            let journalVerifierKeys: [String]
            let journalCheckpointWithin: String
            let journalCheckpointReissue: String
            let journalWitnessDirectories: [String]
            let journalSocket: String
            let journalSocketPeers: [String]
        }

        func run() async throws {
            try await reportingFailures {
                let configuration = try options.loadConfiguration()
                let settings = Settings(
                    databaseConnection: redactPassword(configuration.database.connection),
                    databasePoolSize: configuration.database.poolSize, loggingLevel: configuration.logging.level,
                    statePath: configuration.paths.state, policiesPath: configuration.paths.policies,
                    journalOrigin: configuration.journal.origin, journalDatabase: redactPassword(configuration.journalConnection),
                    journalSigningKeyFiles: configuration.journal.signingKeyFiles, journalVerifierKeys: configuration.journal.verifierKeys,
                    journalCheckpointWithin: "\(configuration.journal.checkpointWithin)", journalCheckpointReissue: "\(configuration.journal.checkpointReissue)",
                    journalWitnessDirectories: configuration.journal.witnessDirectories, journalSocket: configuration.journal.socket,
                    journalSocketPeers: configuration.journal.socketPeers.map { "uid \($0.uid) as \($0.source)" })
                if json {
                    try printJSON(settings)
                } else {
                    printTable(["SETTING", "VALUE"], [
                        ["database.connection", settings.databaseConnection.isEmpty ? "(libpq environment)" : settings.databaseConnection],
                        ["database.pool_size", String(settings.databasePoolSize)],
                        ["logging.level", settings.loggingLevel],
                        ["paths.state", settings.statePath],
                        ["paths.policies", settings.policiesPath],
                        ["journal.origin", settings.journalOrigin],
                        ["journal.database", settings.journalDatabase.isEmpty ? "(libpq environment)" : settings.journalDatabase],
                        ["journal.signing_key_files", settings.journalSigningKeyFiles.isEmpty ? "(journal-signing-key… credentials)" : settings.journalSigningKeyFiles.joined(separator: ", ")],
                        ["journal.verifier_keys", settings.journalVerifierKeys.isEmpty ? "(derived from the signing keys)" : settings.journalVerifierKeys.joined(separator: ", ")],
                        ["journal.checkpoint_within", settings.journalCheckpointWithin],
                        ["journal.checkpoint_reissue", settings.journalCheckpointReissue],
                        ["journal.witness_directories", settings.journalWitnessDirectories.isEmpty ? "(none)" : settings.journalWitnessDirectories.joined(separator: ", ")],
                        ["journal.socket", settings.journalSocket.isEmpty ? "(systemd socket activation)" : settings.journalSocket],
                        ["journal.socket_peers", settings.journalSocketPeers.isEmpty ? "(none)" : settings.journalSocketPeers.joined(separator: ", ")],
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
