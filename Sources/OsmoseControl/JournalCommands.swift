import ArgumentParser
import Foundation
import Store
import Glibc
import Journal
import JournalArchive
import Settings

/// The security officer's commands: integrity, investigation, proofs and exports.
struct JournalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal", abstract: "The tamper-evident access journal (security officer).",
        discussion: """
            verify exits 5 when anything is wrong and names the first bad sequence number.
            Connect with the auditor role (read-only), e.g. --database "host=… user=osmose_auditor dbname=osmose".
            """,
        subcommands: [
            Verify.self, Search.self, Show.self, Tail.self, Prove.self, Export.self, Tiles.self, CheckpointCommand.self, VerifierKey.self,
            KeyGenerate.self, JournalArchiveCommand.self,
        ])

    // MARK: keys

    struct KeyGenerate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "keygen", abstract: "Make a journal signing key (mode 0600, never overwritten) and print its verifier key.",
            discussion: "Then protect it with systemd-creds encrypt and pass it as LoadCredentialEncrypted=journal-signing-key:…; publish the verifier key to auditors and witnesses.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The key name, equal to the log's origin (default: journal.origin).") var origin: String?
        @Option(help: "Where to write the signing key.") var out: String

        func run() async throws {
            try await reportingFailures {
                let name = try origin ?? options.loadConfiguration().journal.origin
                let key = try NoteSignerKey.generate(name: name)
                try writeSecretFile(out, key.exposedEncoding() + "\n")
                print(key.verifierKey.encoded)
            }
        }
    }

    struct VerifierKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "vkey", abstract: "Print the journal's verifier keys (C2SP note verifier-key format), one per line.",
            discussion: """
                From --key-file (a signing key) if given, else journal.verifier_key(s), else the keys in journal.signing_key_file(s). \
                With --keyring, the keys the keyring records and their states (to publish after a rollover; \
                check them out of band before trusting them).
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "A signing key file to derive the verifier key from.") var keyFile: String?
        @Flag(help: "List the keyring's journal signing keys with their states.") var keyring = false

        func run() async throws {
            try await reportingFailures {
                if keyring {
                    let records = try await options.withConnection { connection in try await connection.perform { try SigningKeyRecord.all(on: $0) } }
                    for record in records { print("\(record.verifierKey.encoded) \(record.state.displayName)") }
                    return
                }
                let journal = try options.loadConfiguration().journal
                if let keyFile {
                    guard let data = FileManager.default.contents(atPath: keyFile) else { throw JournalError(.signingKey, "cannot read \(keyFile)") }
                    print(try NoteSignerKey(encoded: String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)).verifierKey.encoded)
                    return
                }
                for key in try resolveVerifierKeys([], journal) { print(key.encoded) }
            }
        }
    }

    // MARK: verify

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify the whole journal: sequence, canonical bytes, leaf and chain hashes, checkpoints, tiles, witness copies.",
            discussion: """
                Reads one consistent snapshot. With --since CHECKPOINT, starts from that checkpoint (its signature and
                root are checked against the stored tree) instead of entry 0. Exit status 0 when everything holds,
                5 when anything is wrong (the first bad sequence number is printed).
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "Start from this checkpoint id (incremental run).") var since: Int64?
        @Option(
            name: .customLong("key"),
            help: "A verifier key the log has signed with; repeat for each key of its history (default: journal.verifier_keys, else derived from journal.signing_key_files).")
        var keys: [String] = []
        @Option(name: .customLong("witness"), help: "A witness directory to compare (default: journal.witness_directories).") var witnesses: [String] = []
        @Flag(help: "Compare no witness directory (when they are not reachable from here); a rolled-back database then goes unnoticed.")
        var noWitnesses = false
        @Flag(help: "Print the report as JSON.") var json = false
        @Option(help: "Verify this cold archive of a month instead (alone, then against the online journal): see journal archive verify.")
        var archive: String?
        @Option(help: "With --archive: an age identity file that opens it (default: archives.identity_file).") var identity: String?
        @Option(help: "With --archive: which checkpoint signatures to verify, all or covering.") var signatures: SignatureChoice = .all
        @Flag(help: "With --archive: verify it alone, without the database.") var noOnline = false

        func run() async throws {
            if let archive {
                return try await ArchiveVerifyOptions.verify(
                    options: options, archive: archive, identity: identity, keys: keys, signatures: signatures.signatures, online: !noOnline, json: json)
            }
            try await reportingFailures {
                let configuration = try options.loadConfiguration()
                let verifierKeys = try resolveVerifierKeys(keys, configuration.journal)
                let directories =
                    noWitnesses ? [] : (witnesses.isEmpty ? configuration.journal.witnessDirectories : witnesses).map(WitnessDirectory.init(path:))
                if noWitnesses { FileHandle.standardError.write(Data("osmosectl: witness copies not compared (--no-witnesses)\n".utf8)) }
                // Witness copies are read before the database snapshot is taken: the daemon commits a
                // checkpoint before copying it out, so every note read here is in the snapshot.
                var read: [(name: String, notes: [String], latest: String?)] = []
                for directory in directories { read.append(try await directory.read()) }
                let witnessNotes = read
                let started = ContinuousClock.now
                let since = self.since
                let report = try await options.withSnapshot { connection in
                    try JournalVerifier(keys: verifierKeys, now: microsecondsNow())
                        .verify(DatabaseSnapshot(connection: connection), since: since, witnesses: witnessNotes)
                }
                let elapsed = ContinuousClock.now - started
                if json {
                    try printJSON(report)
                } else {
                    let range = report.entriesChecked == 0 ? "no entries" : "entries \(report.firstSequence)…\(report.firstSequence + report.entriesChecked - 1)"
                    print(
                        "checked \(range), \(report.checkpointsChecked) checkpoints (latest #\(report.latestCheckpoint.map(String.init) ?? "none")), "
                            + "\(report.tilesChecked) tiles, \(report.witnessNotesChecked) witness notes in \(directories.count) directories, in \(elapsed)")
                    for archived in report.archivedRanges { print(Self.describe(archived)) }
                    for failure in report.failures { print("FAIL \(failure)") }
                }
                guard report.passed else {
                    if report.failures.contains(where: { $0.code == .checkpointSignature }) {
                        await hintUntrustedKeys(verifierKeys)
                    }
                    FileHandle.standardError.write(
                        Data("osmosectl: journal verification FAILED; first bad sequence number: \(report.firstBadSequence.map(String.init) ?? "n/a")\n".utf8))
                    throw ExitCode(ExitStatus.integrity.rawValue)
                }
                if !json { print("journal verified: OK") }
            }
        }

        /// One purged range: where its entries are, and where its purge is journaled.
        static func describe(_ archived: ArchivedRangeCheck) -> String {
            let range = archived.range
            let purge: String
            switch archived.purge {
            case .journaled(let sequence): purge = "purge journaled at seq \(sequence)"
            case .inArchivedMonth(let month): purge = "purge journaled in the archived month \(month)"
            case .pending: purge = "purge not sequenced yet"
            case .notChecked: purge = "purge event not looked for"
            case .missing: purge = "NO journal event of the purge"
            }
            return "archived entries \(range.firstSequence)…\(range.lastSequence) (\(range.month)): \(range.location), sha256 \(range.archiveSHA256); "
                + "leaf hashes replayed from the stored tiles; \(purge)"
        }

        /// After a signature failure: names the keyring's signing keys that were not
        /// passed (a rollover the configuration missed). Never trusted automatically.
        func hintUntrustedKeys(_ trusted: [NoteVerifierKey]) async {
            let records = (try? await options.withConnection { connection in try await connection.perform { try SigningKeyRecord.all(on: $0) } }) ?? []
            for record in records where !trusted.contains(record.verifierKey) {
                FileHandle.standardError.write(
                    Data(
                        "osmosectl: the keyring records signing key \(record.verifierKey.encoded) (\(record.state.displayName)), which you did not pass; after checking it out of band, add it to journal.verifier_keys\n"
                            .utf8))
            }
        }
    }

    // MARK: investigation

    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Find entries by patient, user, team, action, purpose, result and period.",
            discussion: "Every hit is decoded from its hashed bytes and re-checked against the filters. Periods are dates (2026-11-01) or RFC 3339 times, UTC.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "Patient id (UUID).") var patient: String?
        @Option(help: "Acting user id (UUID).") var user: String?
        @Option(help: "Acting team code.") var team: String?
        @Option(help: "Action (\(AccessAction.allCases.map(\.rawValue).joined(separator: ", "))).") var action: String?
        @Option(help: "Purpose (\(AccessPurpose.allCases.map(\.rawValue).joined(separator: ", "))).") var purpose: String?
        @Option(help: "Result (success, denied, error).") var result: String?
        @Option(help: "Occurred at or after.") var from: String?
        @Option(help: "Occurred before.") var to: String?
        @Option(help: "At most this many entries (newest last).") var limit = 1000
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            _ = try search()
            guard (1...1_000_000).contains(limit) else { throw ValidationError("--limit must be between 1 and 1000000") }
        }

        /// The search the options ask for.
        /// - Throws: `ValidationError` naming the option that is malformed.
        func search() throws -> JournalSearch {
            func id(_ name: String, _ value: String?) throws -> UUID? {
                guard let value else { return nil }
                guard let id = UUID(uuidString: value) else { throw ValidationError("--\(name) must be a UUID") }
                return id
            }
            func moment(_ name: String, _ value: String?) throws -> Date? {
                guard let value else { return nil }
                guard let moment = rfc3339Moment(value) ?? Self.day(value) else {
                    throw ValidationError("--\(name) must be a date (2026-11-01) or an RFC 3339 time (2026-11-01T08:30:00Z)")
                }
                return moment
            }
            var search = JournalSearch(patientID: try id("patient", patient), actorUserID: try id("user", user), actorTeam: team, limit: limit)
            if let action {
                guard let known = AccessAction(rawValue: action) else { throw ValidationError("--action: unknown action \(action)") }
                search.action = known
            }
            if let purpose {
                guard let known = AccessPurpose(rawValue: purpose) else { throw ValidationError("--purpose: unknown purpose \(purpose)") }
                search.purpose = known
            }
            if let result {
                guard let known = AccessResult(rawValue: result) else { throw ValidationError("--result must be success, denied or error") }
                search.result = known
            }
            search.occurredFrom = try moment("from", from)
            search.occurredBefore = try moment("to", to)
            return search
        }

        /// A calendar date such as 2026-11-01, as its first moment in UTC.
        static func day(_ text: String) -> Date? {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withFullDate]
            return formatter.date(from: text)
        }

        func run() async throws {
            try await reportingFailures {
                let search = try search()
                let (entries, archived) = try await options.withSnapshot { connection in
                    (try search.entries(on: connection), try search.archivedRanges(on: connection))
                }
                // Purged months are not searched: say which archive holds them (on standard error with --json).
                let notes = archived.map { range in
                    "entries \(range.firstSequence)…\(range.lastSequence) (\(range.month), occurred \(JournalEntry.rfc3339(microseconds: range.occurredFrom).prefix(10))"
                        + " to \(JournalEntry.rfc3339(microseconds: range.occurredTo).prefix(10))) were purged and not searched: they are in \(range.location)"
                }
                if json {
                    try printJSON(entries)
                    for note in notes { FileHandle.standardError.write(Data("osmosectl: \(note)\n".utf8)) }
                } else {
                    printTable(
                        ["SEQ", "OCCURRED (UTC)", "USER", "ROLE", "TEAM", "ACTION", "OBJECT", "PATIENT", "PURPOSE", "RESULT", "FROM"],
                        entries.map(Self.columns))
                    print("\(entries.count) entries")
                    for note in notes { print(note) }
                }
            }
        }

        static func columns(_ entry: JournalEntry) -> [String] {
            [
                "\(entry.sequence)", String(JournalEntry.rfc3339(microseconds: entry.occurredAt).prefix(23)),
                entry.actorUsername ?? entry.actorUserID ?? "-", entry.actorRole ?? "-", entry.actorTeam ?? "-", entry.action,
                entry.objectType + (entry.objectID.map { ":" + $0 } ?? ""), entry.patientID ?? "-", entry.purpose ?? "-",
                entry.result + (entry.reason.map { " (\($0))" } ?? ""), entry.clientIP ?? "-",
            ]
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one entry, its hashes and the first checkpoint that covers it.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The sequence number.") var sequence: UInt64
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let sequence = self.sequence
                let (stored, covering) = try await options.withConnection { connection in
                    try await connection.perform { connection in
                        if let archived = try JournalDatabase.archivedRange(containing: sequence, on: connection) {
                            throw JournalError(.notFound, "entry \(sequence) was purged with \(archived.month): it is in \(archived.location)")
                        }
                        return (try JournalDatabase.entry(sequence, on: connection), try JournalDatabase.firstCheckpoint(covering: sequence, on: connection))
                    }
                }
                if json {
                    struct Shown: Encodable {
                        let entry: JournalEntry
                        let canonicalHex, leafHash, chainHash: String
                        let coveredByCheckpoint: Int64?
                    }
                    try printJSON(
                        Shown(
                            entry: stored.entry, canonicalHex: hex(stored.canonical), leafHash: hex(stored.leafHash), chainHash: hex(stored.chainHash),
                            coveredByCheckpoint: covering?.id))
                    return
                }
                let entry = stored.entry
                let lines: [(String, String?)] = [
                    ("seq", "\(entry.sequence)"), ("occurred_at", JournalEntry.rfc3339(microseconds: entry.occurredAt)),
                    ("sequenced_at", JournalEntry.rfc3339(microseconds: entry.sequencedAt)), ("source", entry.source), ("request_id", entry.requestID),
                    ("actor_user_id", entry.actorUserID), ("actor_username", entry.actorUsername), ("actor_role", entry.actorRole),
                    ("actor_team", entry.actorTeam), ("action", entry.action), ("object", entry.objectType + (entry.objectID.map { ":" + $0 } ?? "")),
                    ("patient_id", entry.patientID), ("purpose", entry.purpose), ("result", entry.result), ("reason", entry.reason),
                    ("client_ip", entry.clientIP), ("user_agent", entry.userAgent), ("leaf_hash", hex(stored.leafHash)), ("chain_hash", hex(stored.chainHash)),
                    ("checkpoint", covering.map { "#\($0.id) (size \($0.treeSize))" } ?? "not yet covered by a checkpoint"),
                ]
                for (name, value) in lines { print("\(name.padding(toLength: 15, withPad: " ", startingAt: 0)) \(value ?? "-")") }
            }
        }
    }

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the newest entries; with -f, keep printing new ones until interrupted.")
        @OptionGroup var options: GlobalOptions
        @Option(name: .customShort("n"), help: "How many of the newest entries to print first.") var lines = 10
        @Flag(name: .short, help: "Follow: print entries as they are sequenced.") var follow = false
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            try await reportingFailures {
                let (newest, follow, json) = (UInt64(max(0, lines)), self.follow, self.json)
                try await options.withConnection { connection in
                    let size = try await connection.perform { try JournalDatabase.treeSize(on: $0) }
                    var next = size > newest ? size - newest : 0
                    repeat {
                        let from = next
                        let entries = try await connection.perform { try JournalDatabase.entries(from..<from + 1000, on: $0) }
                        for stored in entries {
                            if json {
                                let encoder = JSONEncoder()
                                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                                print(String(decoding: try encoder.encode(stored.entry), as: UTF8.self))
                            } else {
                                print(Search.columns(stored.entry).joined(separator: "  "))
                            }
                            next = stored.entry.sequence + 1
                        }
                        fflush(nil)
                        if follow && entries.count < 1000 { try await Task.sleep(for: .milliseconds(500)) }
                    } while follow
                }
            }
        }
    }

    // MARK: proofs

    struct Prove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Inclusion and consistency proofs any RFC 9162 verifier accepts.", subcommands: [Inclusion.self, Consistency.self])

        struct Inclusion: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "c2sp.org/tlog-proof@v1 proofs that entries SEQ… are in the journal, against the latest (or a given) checkpoint.",
                discussion: """
                    With several SEQs (or --sequences-file), one proof per entry in sequence order, separated by a line `--`; \
                    the hash tiles they need are read once for all of them.
                    """)
            @OptionGroup var options: GlobalOptions
            @Argument(help: "The sequence numbers.") var sequences: [UInt64] = []
            @Option(help: "A file of sequence numbers, one a line ('-': standard input).") var sequencesFile: String?
            @Option(help: "The checkpoint id to prove against (default: the latest).") var checkpoint: Int64?

            func validate() throws {
                guard !sequences.isEmpty || sequencesFile != nil else { throw ValidationError("give at least one SEQ, or --sequences-file") }
            }

            func run() async throws {
                try await reportingFailures {
                    let selection = EntrySelection.sequences(sequences + (try sequencesFile.map(readSequences) ?? []))
                    let id = self.checkpoint
                    try await options.withSnapshot { connection in
                        var first = true
                        try JournalProofs.inclusion(of: selection, checkpoint: id, on: connection) { text in
                            if !first { print("--") }
                            print(text, terminator: "")
                            first = false
                        }
                    }
                }
            }
        }

        struct Consistency: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "The consistency proof from checkpoint OLD to checkpoint NEW, as the body of a C2SP tlog-witness add-checkpoint request.",
                discussion: """
                    With more ids (OLD NEW NEWER…), the chain of proofs from each checkpoint to the next, separated by a line `--`; \
                    the hash tiles are read once for the whole chain.
                    """)
            @OptionGroup var options: GlobalOptions
            @Argument(help: "The older checkpoint id.") var old: Int64
            @Argument(help: "The newer checkpoint id, then optionally later ones.") var newer: [Int64]

            func validate() throws {
                guard !newer.isEmpty else { throw ValidationError("give the newer checkpoint id NEW after OLD") }
            }

            func run() async throws {
                try await reportingFailures {
                    let ids = [old] + newer
                    try await options.withSnapshot { connection in
                        var first = true
                        try JournalProofs.consistencyChain(ids, on: connection) { body in
                            if !first { print("--") }
                            print(body, terminator: "")
                            first = false
                        }
                    }
                }
            }
        }
    }

    // MARK: exports

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export entries as a C2SP entry bundle with covering checkpoints and proofs, or as FHIR AuditEvents.",
            discussion: """
                Choose the entries with --from A --to B (inclusive), with --seq (scattered sequence numbers; repeat it or \
                separate them with commas) and/or --sequences-file, or with --patient (every entry about that patient). \
                --format bundle (default) writes into the directory --out: `entries` (the entry bundle), `checkpoint` (the \
                first checkpoint covering the last entry), `checkpoints` (every checkpoint from the one before the first entry \
                to it), `proofs` (one c2sp.org/tlog-proof@v1 per entry, separated by a line `--`) and `consistency` (the \
                proof that `checkpoint` is a prefix of the latest checkpoint). --format fhir writes a FHIR R4 Bundle of \
                AuditEvent resources to --out (a file) or standard output. Files are complete when they appear (mode 0600); \
                the export is itself journaled. On a terminal, progress goes to standard error.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "First sequence number.") var from: UInt64?
        @Option(help: "Last sequence number (inclusive).") var to: UInt64?
        @Option(name: .customLong("seq"), help: "Sequence numbers, separated by commas; repeatable.") var sequenceLists: [String] = []
        @Option(help: "A file of sequence numbers, one a line ('-': standard input).") var sequencesFile: String?
        @Option(help: "Every entry about this patient (UUID).") var patient: String?
        @Option(help: "bundle or fhir.") var format = "bundle"
        @Option(help: "Output directory (bundle) or file (fhir; default standard output).") var out: String?

        func validate() throws {
            let ways = [from != nil || to != nil, !sequenceLists.isEmpty || sequencesFile != nil, patient != nil].filter { $0 }.count
            guard ways == 1 else { throw ValidationError("choose the entries one way: --from/--to, --seq/--sequences-file, or --patient") }
            if from != nil || to != nil {
                guard let from, let to else { throw ValidationError("--from and --to go together") }
                guard from <= to else { throw ValidationError("--from must not be after --to") }
                guard to - from < JournalExport.maximumCount else { throw ValidationError("export at most 10,000,000 entries at a time") }
            }
            _ = try listedSequences()
            if let patient, UUID(uuidString: patient) == nil { throw ValidationError("--patient must be a UUID") }
            guard ["bundle", "fhir"].contains(format) else { throw ValidationError("--format must be bundle or fhir") }
            if format == "bundle" && out == nil { throw ValidationError("--out DIR is required for --format bundle") }
        }

        /// The numbers given with --seq.
        func listedSequences() throws -> [UInt64] {
            try sequenceLists.flatMap { list in
                try list.split(separator: ",").map { item in
                    guard let value = UInt64(item.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--seq: \(item) is not a sequence number") }
                    return value
                }
            }
        }

        func run() async throws {
            try await reportingFailures {
                var export = JournalExport(try await selection(), exportedBy: operatorActor(.securityOfficer))
                export.patientID = patient.flatMap(UUID.init(uuidString:))
                let progress = terminalProgress()
                defer { progress.finish() }
                if format == "fhir" {
                    let origin = try options.loadConfiguration().journal.origin
                    let (out, report) = (self.out, progress.report)
                    _ = try await options.withConnection { connection in
                        try await export.writeFHIR(to: out, origin: origin, now: microsecondsNow(), on: connection, progress: report)
                    }
                    return
                }
                guard let out else { return }
                let summary = try await options.withConnection { connection in try await export.writeBundle(into: out, on: connection, progress: progress.report) }
                progress.finish()
                print(
                    "exported \(summary.entries) entries (\(export.selection)) with \(summary.checkpoints) checkpoints "
                        + "(covering: #\(summary.covering.id), size \(summary.covering.treeSize); latest #\(summary.latest.id)) to \(out)")
            }
        }

        /// The entries the options choose.
        func selection() async throws -> EntrySelection {
            if let from, let to { return .range(from...to) }
            if let patient, let id = UUID(uuidString: patient) {
                // One more than the most taken, so that a larger set is refused rather than cut short.
                let most = 1_000_000
                let search = JournalSearch(patientID: id, limit: most + 1)
                let entries = try await options.withConnection { connection in try await connection.perform { try search.entries(on: $0) } }
                guard !entries.isEmpty else { throw ValidationError("no journal entry concerns patient \(patient)") }
                guard entries.count <= most else {
                    throw ValidationError("more than \(most) journal entries concern patient \(patient): export them in parts with --from/--to or --sequences-file")
                }
                return .sequences(entries.map(\.sequence))
            }
            return .sequences(try listedSequences() + (try sequencesFile.map(readSequences) ?? []))
        }
    }

    struct Tiles: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the journal as a C2SP tlog-tiles tree (checkpoint, hash tiles, entry bundles) for a static web server.",
            discussion: "The tree is that of the latest checkpoint (or --checkpoint). Existing files of the same path are replaced.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "Output directory.") var out: String
        @Option(help: "The checkpoint to publish (default: the latest).") var checkpoint: Int64?

        func run() async throws {
            try await reportingFailures {
                let (out, id) = (self.out, self.checkpoint)
                let publication = try await options.withSnapshot { try TilePublisher(directory: out).publish(checkpoint: id, on: $0) }
                print("wrote \(publication.files) files for checkpoint #\(publication.checkpoint.id) (size \(publication.checkpoint.treeSize)) to \(out)")
            }
        }
    }

    struct CheckpointCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "checkpoint", abstract: "Print the latest (or a given) signed checkpoint.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The checkpoint id.") var id: Int64?

        func run() async throws {
            try await reportingFailures {
                let id = self.id
                let record = try await options.withConnection { connection in
                    try await connection.perform { try JournalDatabase.checkpoint(idOrLatest: id, on: $0) }
                }
                guard let record else { throw JournalError(.notFound, "no checkpoint yet: is osmose-journald running?") }
                print(record.note, terminator: "")
            }
        }
    }
}

/// The verifier keys from the options, the configuration, or the configured signing keys.
func resolveVerifierKeys(_ options: [String], _ journal: SuiteConfiguration.Journal) throws -> [NoteVerifierKey] {
    let texts = options.isEmpty ? journal.verifierKeys : options
    if !texts.isEmpty { return try texts.map(NoteVerifierKey.init(encoded:)) }
    let derived = try journal.signingKeyFiles.compactMap { path -> NoteVerifierKey? in
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try NoteSignerKey(encoded: String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)).verifierKey
    }
    guard !derived.isEmpty else {
        throw JournalError(.signingKey, "no verifier key: set journal.verifier_keys (osmosectl journal vkey prints them) or pass --key")
    }
    return derived
}

func microsecondsNow() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_nsec) / 1000
}

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]] })
}

/// Writes a file, creating its directory.
func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let directory = (path as NSString).deletingLastPathComponent
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
        throw ValidationError("cannot write \(path)")
    }
}

/// Sequence numbers from a file (or standard input for `-`), one a line; blank lines
/// and lines starting with `#` are skipped.
/// - Throws: `ValidationError` naming the file and line that is not a number.
func readSequences(_ path: String) throws -> [UInt64] {
    let data = path == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: path)
    guard let data else { throw ValidationError("cannot read \(path)") }
    var sequences: [UInt64] = []
    for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let text = line.trimmingCharacters(in: .whitespaces)
        if text.isEmpty || text.hasPrefix("#") { continue }
        guard let value = UInt64(text) else { throw ValidationError("\(path), line \(number + 1): \(text) is not a sequence number") }
        sequences.append(value)
    }
    return sequences
}

/// Progress of a long export on standard error, only when it is a terminal.
final class TerminalProgress: Sendable {
    private let shown = Locked(false)
    private let enabled: Bool

    init(enabled: Bool) { self.enabled = enabled }

    /// Reports progress (nil when standard error is not a terminal).
    var report: (@Sendable (JournalExportProgress) -> Void)? {
        guard enabled else { return nil }
        return { [self] progress in
            shown.withLock { $0 = true }
            let percent = progress.total == 0 ? 100 : progress.entries * 100 / progress.total
            FileHandle.standardError.write(Data("\rosmosectl: \(progress.entries) of \(progress.total) entries written (\(percent) %)".utf8))
        }
    }

    /// Ends the progress line.
    func finish() {
        guard shown.withLock({ shown in defer { shown = false }; return shown }) else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

/// Progress for a long-running command: on standard error when it is a terminal.
func terminalProgress() -> TerminalProgress { TerminalProgress(enabled: isatty(STDERR_FILENO) == 1) }
