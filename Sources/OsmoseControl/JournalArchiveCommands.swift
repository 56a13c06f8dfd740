import Age
import ArgumentParser
import Foundation
import Journal
import JournalArchive
import Settings

/// `osmosectl journal archive …`: the sysadmin's cold archives of journal months
/// (docs/retention.md, "Journal months"), before and beside osmose-retentiond.
struct JournalArchiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive", abstract: "Cold archives of journal months: list, write, verify, purge.",
        discussion: """
            A month is written to every archive directory (archives.directories), encrypted to archives.recipients, read back
            and verified; only then may it be purged. Run write and purge with the retention role
            (--database "… user=osmose_retention …") or the schema owner. Each is journaled (retention-admin); --dry-run says
            what would be done and does nothing.
            """,
        subcommands: [List.self, Write.self, Verify.self, Purge.self])

    /// The archiver the configuration describes, acting as the sysadmin running osmosectl.
    static func archiver(_ options: GlobalOptions, keys: [String] = []) throws -> JournalArchiver {
        let configuration = try options.loadConfiguration()
        let recipients = try configuration.archives.recipients.map(AgeRecipients.parse)
        // Only writing needs the verifier keys (and says so when there are none); keys given on the command line must parse.
        let verifierKeys = keys.isEmpty ? (try? resolveVerifierKeys([], configuration.journal)) ?? [] : try resolveVerifierKeys(keys, configuration.journal)
        return JournalArchiver(
            directories: configuration.archives.directories, recipients: recipients, verifierKeys: verifierKeys, actor: operatorActor(.sysadmin),
            logger: options.logger)
    }

    /// `YYYY-MM` as a month.
    static func month(_ text: String) throws -> JournalMonth {
        do {
            return try JournalMonth(parsing: text)
        } catch let error as JournalArchiveError {
            throw ValidationError(error.message)
        }
    }

    static func size(_ bytes: Int64) -> String {
        bytes >= 1 << 30 ? String(format: "%.1f GiB", Double(bytes) / 1_073_741_824) : String(format: "%.1f MiB", Double(bytes) / 1_048_576)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every month of the journal: online, archived (where), purged, destroyed.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let archiver = try JournalArchiveCommand.archiver(options)
                let months = try await options.withConnection { try await archiver.months(on: $0) }
                if json { return try printJSON(months) }
                printTable(
                    ["MONTH", "STATE", "FIRST", "LAST", "ENTRIES", "ARCHIVE", "COPIES"],
                    months.map { status in
                        [
                            "\(status.month)", status.state.rawValue, status.firstSequence.map(String.init) ?? "-", status.lastSequence.map(String.init) ?? "-",
                            "\(status.entryCount)", status.archive.map { "\($0.fileName) sha256 \($0.archiveSHA256.prefix(16))…" } ?? "-",
                            status.archive?.copies.joined(separator: ", ") ?? "-",
                        ]
                    })
            }
        }
    }

    struct Write: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a month's cold archive to every archive directory, read each copy back and verify it, record it.",
            discussion: """
                The month must be over (the journal has sequenced an entry after it) and covered by a checkpoint. A month
                already archived with intact copies is left as it is.
                """)
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The month, YYYY-MM (UTC).") var month: String
        @Option(name: .customLong("key"), help: "A verifier key of the log (default: journal.verifier_keys).") var keys: [String] = []
        @Flag(help: "Say what would be written; write nothing.") var dryRun = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws { _ = try JournalArchiveCommand.month(month) }

        func run() async throws {
            try await reportingFailures {
                let month = try JournalArchiveCommand.month(self.month)
                let archiver = try JournalArchiveCommand.archiver(options, keys: keys)
                let dryRun = self.dryRun
                let receipt = try await options.withConnection { try await archiver.write(month, dryRun: dryRun, on: $0) }
                if json { return try printJSON(receipt) }
                let entries = "entries \(receipt.firstSequence)…\(receipt.lastSequence) (\(receipt.entryCount)), \(receipt.checkpointCount) checkpoints (covering #\(receipt.coveringCheckpoint))"
                if receipt.dryRun {
                    print("would archive \(month): \(entries), to \(receipt.copies.joined(separator: ", "))")
                } else if receipt.alreadyArchived {
                    print("\(month) is already archived: \(receipt.fileName) sha256 \(receipt.archiveSHA256 ?? "?"), copies intact in \(receipt.copies.joined(separator: ", "))")
                } else {
                    print("archived \(month): \(entries)")
                    print("  \(receipt.fileName), \(JournalArchiveCommand.size(receipt.archiveBytes ?? 0)), sha256 \(receipt.archiveSHA256 ?? "?")")
                    if let verification = receipt.verification {
                        print(
                            "  read back and verified: \(verification.entriesChecked) entries, \(verification.checkpointsChecked) checkpoints, \(verification.tilesChecked) tiles")
                    }
                    for copy in receipt.copies { print("  copy: \(copy) (read back identical)") }
                }
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove a month's entries from the database, once its verified archive is recorded and every copy reads back intact.",
            discussion: "Its hash tiles and checkpoints stay: the journal, its checkpoints and its proofs stay verifiable.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The month, YYYY-MM (UTC).") var month: String
        @Flag(help: "Check and say what would be removed; remove nothing.") var dryRun = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws { _ = try JournalArchiveCommand.month(month) }

        func run() async throws {
            try await reportingFailures {
                let month = try JournalArchiveCommand.month(self.month)
                let archiver = try JournalArchiveCommand.archiver(options)
                let dryRun = self.dryRun
                let receipt = try await options.withConnection { try await archiver.purge(month, dryRun: dryRun, on: $0) }
                if json { return try printJSON(receipt) }
                let entries = "entries \(receipt.firstSequence)…\(receipt.lastSequence)"
                let location = "\(receipt.fileName) (sha256 \(receipt.archiveSHA256)) at \(receipt.copies.joined(separator: ", "))"
                if receipt.dryRun {
                    print("would purge \(month): \(entries); every copy of \(location) reads back intact")
                } else if receipt.alreadyPurged {
                    print("\(month) is already purged: \(entries) are in \(location)")
                } else {
                    print("purged \(month): \(receipt.removed ?? 0) entries (\(entries)) removed from the database; they are in \(location)")
                }
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify a cold archive alone, then against the online journal.",
            discussion: "The same as osmosectl journal verify --archive FILE. Exit status 5 when anything is wrong.")
        @OptionGroup var archive: ArchiveVerifyOptions

        func run() async throws { try await archive.run() }
    }
}

/// The options and the run of `journal archive verify` and `journal verify --archive`.
struct ArchiveVerifyOptions: ParsableArguments {
    @OptionGroup var options: GlobalOptions
    @Option(help: "The archive file (.tar.zst.age).") var archive: String
    @Option(help: "An age identity file that opens it (default: archives.identity_file, else the archive-identity credential).") var identity: String?
    @Option(name: .customLong("key"), help: "A verifier key of the log; repeat for each key of its history (default: journal.verifier_keys).")
    var keys: [String] = []
    @Option(help: "Which checkpoint signatures to verify: all, or covering (the others are still matched with the tree).")
    var signatures: SignatureChoice = .all
    @Flag(help: "Verify the archive alone, without the database (the journal event of the verification is then not recorded).") var noOnline = false
    @Flag(help: "Print the report as JSON.") var json = false

    func run() async throws {
        try await Self.verify(
            options: options, archive: archive, identity: identity, keys: keys, signatures: signatures.signatures, online: !noOnline, json: json)
    }

    /// Verifies `archive` (alone, then against the database when `online`), prints the
    /// report, journals the verification when the database is reachable, and exits 5 on a problem.
    static func verify(
        options: GlobalOptions, archive path: String, identity: String?, keys: [String], signatures: JournalArchiveVerifier.Signatures, online: Bool,
        json: Bool
    ) async throws {
        try await reportingFailures {
            let configuration = try options.loadConfiguration()
            let identities = try identitiesFromFile(identity, configuration.archives)
            let verifier = JournalArchiveVerifier(keys: try resolveVerifierKeys(keys, configuration.journal), signatures: signatures)
            let started = ContinuousClock.now
            let verification =
                online
                ? try await options.withConnection { try await verifier.verify(file: path, identities: identities, against: $0) }
                : try verifier.verify(file: path, identities: identities)
            let elapsed = ContinuousClock.now - started
            if online {
                try await options.record(
                    AccessEvent.system(
                        by: operatorActor(.securityOfficer), action: .read, objectType: ArchiveEvents.objectType,
                        objectID: verification.summary.map { "\($0.month)" }, purpose: .audit,
                        reason: "journal.archive.verify \(verification.passed ? "passed" : "failed"): \((path as NSString).lastPathComponent)"))
            }
            if json {
                try printJSON(verification)
            } else {
                printReport(verification, elapsed: elapsed)
            }
            guard verification.passed else {
                FileHandle.standardError.write(Data("osmosectl: archive verification FAILED: \(verification.problems[0])\n".utf8))
                throw ExitCode(ExitStatus.integrity.rawValue)
            }
            if !json { print("archive verified: OK") }
        }
    }

    static func printReport(_ verification: ArchiveVerification, elapsed: Duration) {
        if let summary = verification.summary {
            print(
                "archive of \(summary.month) from \(summary.origin): entries \(summary.firstSequence)…\(summary.lastSequence), covering checkpoint #\(summary.covering.id) (size \(summary.covering.size))")
        }
        print(
            "checked \(verification.entriesChecked) entries, \(verification.checkpointsChecked) checkpoints against the tree (\(verification.signaturesVerified) signatures), "
                + "\(verification.tilesChecked) tiles, \(verification.members) members against the manifest, in \(elapsed)")
        print("file \(verification.file): \(JournalArchiveCommand.size(verification.fileBytes)), sha256 \(verification.fileSHA256 ?? "?")")
        if verification.comparedWithOnline { print("compared with the online journal: checkpoints, tiles, chain and the recorded archive") }
        for problem in verification.problems { print("FAIL \(problem)") }
    }

    /// The identities from --identity, archives.identity_file or the archive-identity credential.
    private static func identitiesFromFile(_ identity: String?, _ archives: SuiteConfiguration.Archives) throws -> [any AgeUnwrapping] {
        let credential = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"].map { "\($0)/archive-identity" }
        guard let file = identity ?? archives.identityFile ?? credential.flatMap({ FileManager.default.fileExists(atPath: $0) ? $0 : nil }) else {
            throw ValidationError("reading an archive needs an age identity: pass --identity FILE or set archives.identity_file")
        }
        guard let text = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read the identity file \(file)") }
        return try AgeIdentities.parseFile(String(decoding: text, as: UTF8.self))
    }
}

/// `--signatures all|covering`.
enum SignatureChoice: String, ExpressibleByArgument, CaseIterable {
    case all, covering

    var signatures: JournalArchiveVerifier.Signatures { self == .all ? .all : .covering }
}
