import ArgumentParser
import CareRecords
import Settings
import Foundation

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Policy files (retention, access control, keys, backups) as the DPO and sysadmin review them.",
        subcommands: [Check.self]
    )

    /// The policy kinds this build knows, by file name, and their validators.
    static let validators: [String: @Sendable (SettingsDocument) throws -> Void] = [
        "retention.yaml": { _ = try RetentionPolicy.parse($0) },
        "access.yaml": { _ = try AccessPolicy.parse($0) },
        "keys.yaml": { _ = try KeyPolicy.parse($0) },
        "backup.yaml": { _ = try BackupPolicy.parse($0) },
    ]

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate policy files; print each problem as file:line:column.",
            discussion: "With no file, checks every .yaml file in paths.policies. Exits 3 if any file is invalid.")

        @OptionGroup var options: GlobalOptions
        @Argument(help: "Policy files to check.") var files: [String] = []
        @Flag(help: "Print the result as JSON.") var json = false

        struct Result: Encodable {
            let file: String
            let valid: Bool
            let problem: String?
            /// What a valid policy names but this version does not enforce (said plainly).
            var notes: [String] = []
        }

        func run() async throws {
            try await reportingFailures {
                var targets = files
                if targets.isEmpty {
                    let directory = try options.loadConfiguration().paths.policies
                    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
                    targets = names.filter { $0.hasSuffix(".yaml") }.sorted().map { "\(directory)/\($0)" }
                    guard !targets.isEmpty else { throw ValidationError("no .yaml policy files in \(directory)") }
                }
                var results = targets.map { file -> Result in
                    let kind = (file as NSString).lastPathComponent
                    guard let validate = PolicyCommand.validators[kind] else {
                        return Result(file: file, valid: false, problem: "\(file): unknown policy kind \(kind); known: \(PolicyCommand.validators.keys.sorted().joined(separator: ", "))")
                    }
                    do {
                        let document = try SettingsDocument(contentsOf: file)
                        try validate(document)
                        let notes = kind == "retention.yaml" ? try RetentionPolicy.parse(document).unenforcedClasses : []
                        return Result(file: file, valid: true, problem: nil, notes: notes)
                    } catch {
                        return Result(file: file, valid: false, problem: "\(error)")
                    }
                }
                results += retentionAgainstBackup(targets)
                if json {
                    try printJSON(results)
                } else {
                    for result in results {
                        print(result.valid ? "ok       \(result.file)" : "invalid  \(result.problem ?? result.file)")
                        for note in result.notes { print("note     \(result.file): \(note)") }
                    }
                }
                if results.contains(where: { !$0.valid }) { throw ExitCode(ExitStatus.invalidConfiguration.rawValue) }
            }
        }

        /// Retention (issue 16): a retention policy checked is also checked against the
        /// backup policy beside it (backups must be pruned within its margin of every purge).
        func retentionAgainstBackup(_ targets: [String]) -> [Result] {
            targets.filter { ($0 as NSString).lastPathComponent == "retention.yaml" }.compactMap { retention in
                let backup = ((retention as NSString).deletingLastPathComponent as NSString).appendingPathComponent("backup.yaml")
                guard FileManager.default.fileExists(atPath: backup) else { return nil }
                do {
                    try RetentionPolicy.checkBackups(retention: try SettingsDocument(contentsOf: retention), backup: try SettingsDocument(contentsOf: backup))
                    return nil
                } catch let error as ConfigurationError where error.code == .inconsistentPolicies {
                    return Result(file: retention, valid: false, problem: "\(error)")
                } catch {
                    return nil
                }
            }
        }
    }
}
