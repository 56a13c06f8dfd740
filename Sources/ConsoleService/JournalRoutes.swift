import Foundation
import Hummingbird
import Journal
import StaffAccounts
import Store

extension Console {
    /// The security officer's pages: the journal's status (latest checkpoint and its
    /// age, the witnesses, the last verify run, which can be started here), the
    /// search, an entry with its inclusion proof to download, and the alerts.
    func addJournalRoutes(to router: Router<ConsoleRequestContext>) {
        let console = self
        let officer = Audience.roles([.securityOfficer])
        router.get("/journal") { request, context in
            await console.serve(request, context, .read, "console-journal-status", audience: officer) { checked in try await console.journalStatus(checked) }
        }
        router.post("/journal/verifier") { request, context in
            await console.serve(request, context, .journalAdmin, "journal-verify", audience: officer) { checked in try await console.verifyJournal(checked) }
        }
        router.get("/journal/recherche") { request, context in
            await console.serve(request, context, .read, "console-journal-search", audience: officer) { _ in
                .page("journal-search", title: "search_title", SearchModel.blank)
            }
        }
        router.post("/journal/recherche") { request, context in
            await console.serve(request, context, .read, "console-journal-search", audience: officer) { checked in try await console.searchJournal(checked) }
        }
        router.get("/journal/entree/{sequence}") { request, context in
            let sequence = context.parameters.get("sequence")
            return await console.serve(request, context, .read, "journal-entry", audience: officer) { checked in
                try await console.journalEntry(checked, sequence: sequence)
            }
        }
        router.get("/journal/entree/{sequence}/preuve") { request, context in
            let sequence = context.parameters.get("sequence")
            return await console.serve(request, context, .export, "journal-inclusion-proof", audience: officer) { checked in
                try await console.inclusionProof(checked, sequence: sequence)
            }
        }
        router.get("/journal/alertes") { request, context in
            await console.serve(request, context, .read, "console-journal-alerts", audience: officer) { checked in try await console.alerts(checked) }
        }
    }

    // MARK: Status and verification

    struct WitnessRow: Sendable {
        let path: String
        let state: String
        /// Shown as good: it holds the newest checkpoint, or one issued less than the grace period ago is not copied yet.
        let healthy: Bool
    }

    struct VerifyRun: Sendable {
        let when: String
        let by: String
        let passed: Bool
        let detail: String
    }

    struct StatusModel: Sendable {
        let origin: String
        let treeSize: String
        let hasCheckpoint: Bool
        let checkpointID: String
        let checkpointSize: String
        let checkpointIssued: String
        let checkpointAge: String
        let checkpointStale: Bool
        let witnesses: [WitnessRow]
        let noWitness: Bool
        let lastVerify: VerifyRun?
        let canVerify: Bool
        let verifyMessage: String?
    }

    /// The object type of the events that record a verify run started from the console.
    static let verifyObjectType = "journal-verify"

    func journalStatus(_ checked: Checked, verifyMessage: String? = nil) async throws -> ConsoleView {
        // The witnesses first: osmose-journald commits a checkpoint before it copies it,
        // so every note read here is in the database read next (see WitnessStanding).
        let paths = configuration.journal.witnessDirectories
        let notes = paths.map { WitnessDirectory(path: $0).latest() }
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let (size, latest, lastVerify, standings) = try await pool.withConnection { connection in
            try await connection.perform { connection in
                let latest = try JournalDatabase.latestCheckpoint(on: connection)
                return (
                    try JournalDatabase.treeSize(on: connection), latest,
                    try JournalSearch(action: .journalAdmin, limit: 200).entries(on: connection).last { $0.objectType == Self.verifyObjectType },
                    try notes.map { try WitnessStanding.of(note: $0, latest: latest, now: now, on: connection) }
                )
            }
        }
        let witnesses = zip(paths, standings).map { path, standing -> WitnessRow in
            switch standing {
            case .holdsLatest: WitnessRow(path: path, state: renderer.text("witness_holds_latest"), healthy: true)
            case .notCopiedYet(let covered):
                WitnessRow(path: path, state: "\(renderer.text("witness_not_copied_yet")) \(Self.grouped(covered)) \(renderer.text("witness_entries"))", healthy: true)
            case .behind(let covered, let since):
                WitnessRow(
                    path: path,
                    state: "\(renderer.text("witness_behind")) \(Self.grouped(covered)) \(renderer.text("witness_entries")) ; \(renderer.text("witness_missing_since")) \(ParisTime.format(microseconds: since))",
                    healthy: false)
            case .unknownToDatabase: WitnessRow(path: path, state: renderer.text("witness_unknown"), healthy: false)
            case .empty: WitnessRow(path: path, state: renderer.text("witness_unreadable"), healthy: false)
            }
        }
        let issued = latest.map { Date(timeIntervalSince1970: TimeInterval($0.issuedAt) / 1_000_000) }
        let model = StatusModel(
            origin: configuration.journal.origin, treeSize: Self.grouped(size), hasCheckpoint: latest != nil, checkpointID: latest.map { "#\($0.id)" } ?? "",
            checkpointSize: latest.map { Self.grouped($0.treeSize) } ?? "", checkpointIssued: issued.map(ParisTime.format) ?? "",
            checkpointAge: issued.map { ParisTime.age(since: $0, strings: renderer.text) } ?? "",
            checkpointStale: issued.map { Date().timeIntervalSince($0) > 2 * Double(configuration.journal.checkpointReissue.components.seconds) + 60 } ?? true,
            witnesses: witnesses, noWitness: witnesses.isEmpty,
            lastVerify: lastVerify.map {
                VerifyRun(
                    when: ParisTime.format(microseconds: $0.occurredAt), by: $0.actorUsername ?? "-", passed: $0.result == "success", detail: $0.reason ?? "")
            }, canVerify: !configuration.journal.verifierKeys.isEmpty, verifyMessage: verifyMessage)
        return .page("journal-status", title: "journal_status_title", model)
    }

    /// Verifies the journal from the checkpoint the last recorded run reached (the
    /// whole journal the first time), with the configured verifier keys and witness
    /// copies, and records the run's result as its event (`journal-admin`,
    /// `journal-verify`, reason `ok: …` or `FAILED: …`), as `osmosectl journal verify` checks.
    func verifyJournal(_ checked: Checked) async throws -> ConsoleView {
        let keys = try configuration.journal.verifierKeys.map(NoteVerifierKey.init(encoded:))
        guard !keys.isEmpty else { throw ConsolePageError.invalidInput("verify_no_keys") }
        let directories = configuration.journal.witnessDirectories.map(WitnessDirectory.init(path:))
        // Read before the database snapshot: every note the daemon copied out is committed, so in it.
        var read: [(name: String, notes: [String], latest: String?)] = []
        for directory in directories { read.append(try await directory.read()) }
        let witnessNotes = read
        let since: Int64? = try await pool.withConnection { connection in
            try await connection.perform { connection in
                try JournalSearch(action: .journalAdmin, result: .success, limit: 200).entries(on: connection)
                    .last { $0.objectType == Self.verifyObjectType }?.objectID.flatMap { Int64($0.replacingOccurrences(of: "checkpoint-", with: "")) }
            }
        }
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        let report = try await pool.withConnection { connection in
            try await connection.transaction(isolation: .repeatableRead) { connection in
                try JournalVerifier(keys: keys, now: now).verify(DatabaseSnapshot(connection: connection), since: since, witnesses: witnessNotes)
            }
        }
        let range = report.entriesChecked == 0 ? "no new entries" : "entries \(report.firstSequence)…\(report.firstSequence + report.entriesChecked - 1)"
        let summary = "\(range), \(report.checkpointsChecked) checkpoints, \(report.witnessNotesChecked) witness notes"
        let detail = report.passed ? "ok: \(summary)" : "FAILED: first bad sequence \(report.firstBadSequence.map(String.init) ?? "n/a"); \(report.failures.first.map { $0.code.rawValue } ?? "")"
        checked.audit.touched(object: report.latestCheckpoint.map { "checkpoint-\($0)" })
        if report.passed {
            checked.audit.note(detail)
        } else {
            // A failed verification is recorded as an error event, which the alerts page lists.
            try await pool.transaction { connection in try connection.record(checked.audit.event(.error(reason: detail))) }
            checked.audit.markRecorded()
        }
        return try await journalStatus(checked, verifyMessage: report.passed ? renderer.text("verify_passed") + " " + summary : renderer.text("verify_failed") + " " + detail)
    }

    // MARK: Search

    struct Choice: Sendable {
        let value: String
        let label: String
        let selected: Bool
    }

    struct EntryRowModel: Sendable {
        let sequence: String
        let occurred: String
        let user: String
        let role: String
        let team: String
        let action: String
        let object: String
        let patient: String
        let purpose: String
        let result: String
        let denied: Bool
    }

    struct SearchModel: Sendable {
        let patient: String
        let user: String
        let team: String
        let from: String
        let to: String
        let actions: [Choice]
        let purposes: [Choice]
        let results: [Choice]
        let searched: Bool
        let entries: [EntryRowModel]
        let count: String
        let limitReached: Bool
        /// Entries of the page whose search columns no longer match their hashed bytes (not shown).
        let mismatched: [String]
        let anyMismatched: Bool
        /// Buttons of the search form to the first and previous pages, then the next and last ones.
        let before: [PageButton]
        let after: [PageButton]
        let position: String
        let paged: Bool

        static let blank = SearchModel(
            patient: "", user: "", team: "", from: "", to: "", actions: choices(AccessAction.allCases.map(\.rawValue), nil),
            purposes: choices(AccessPurpose.allCases.map(\.rawValue), nil), results: choices(AccessResult.allCases.map(\.rawValue), nil), searched: false,
            entries: [], count: "0", limitReached: false, mismatched: [], anyMismatched: false, before: [], after: [], position: "", paged: false)

        static func choices(_ values: [String], _ selected: String?) -> [Choice] {
            [Choice(value: "", label: "—", selected: selected == nil)] + values.map { Choice(value: $0, label: $0, selected: $0 == selected) }
        }
    }

    /// A button that submits the search form again for another page of its results.
    struct PageButton: Sendable {
        let page: String
        let label: String
    }

    /// The newest entries a search finds (the CLI's default is 1,000).
    static let searchLimit = 500
    /// Entries shown per page of a search's results, newest first.
    static let searchPageSize = 50

    func searchJournal(_ checked: Checked) async throws -> ConsoleView {
        let form = checked.form
        var search = JournalSearch(limit: Self.searchLimit)
        if let text = form.text("patient") {
            guard let id = UUID(uuidString: text) else { throw ConsolePageError.invalidInput("search_bad_patient") }
            search.patientID = id
            checked.audit.touched(patient: id)
        }
        if let text = form.text("user") {
            guard let id = UUID(uuidString: text) else { throw ConsolePageError.invalidInput("search_bad_user") }
            search.actorUserID = id
        }
        if let team = form.text("team") {
            guard team.range(of: "^[a-z][a-z0-9-]{1,31}$", options: .regularExpression) != nil else { throw ConsolePageError.invalidInput("search_bad_team") }
            search.actorTeam = team
        }
        if let text = form.text("action") {
            guard let action = AccessAction(rawValue: text) else { throw ConsolePageError.invalidInput("search_bad_choice") }
            search.action = action
        }
        if let text = form.text("purpose") {
            guard let purpose = AccessPurpose(rawValue: text) else { throw ConsolePageError.invalidInput("search_bad_choice") }
            search.purpose = purpose
        }
        if let text = form.text("result") {
            guard let result = AccessResult(rawValue: text) else { throw ConsolePageError.invalidInput("search_bad_choice") }
            search.result = result
        }
        if let text = form.text("from") {
            guard let from = ParisTime.startOfDay(text) else { throw ConsolePageError.invalidInput("search_bad_date") }
            search.occurredFrom = from
        }
        if let text = form.text("to") {
            // The period's last day is included: the search ends at the next day's start.
            guard let to = ParisTime.startOfDay(text) else { throw ConsolePageError.invalidInput("search_bad_date") }
            search.occurredBefore = to.addingTimeInterval(86_400 + 3_600).startOfParisDay
        }
        var asked = 1
        if let text = form.text("page") {
            guard let number = Int(text), (1...(Self.searchLimit / Self.searchPageSize)).contains(number) else {
                throw ConsolePageError.invalidInput("search_bad_page")
            }
            asked = number
        }
        let (query, wanted) = (search, asked)
        // Newest first, a page at a time: only the page's entries are read and checked
        // again; a page past the end (entries purged since) shows the last one.
        let size = Self.searchPageSize
        let found = try await pool.withConnection { connection in
            try await connection.perform { connection -> JournalSearch.Page in
                let found = try query.page((wanted - 1) * size..<wanted * size, on: connection)
                guard found.candidateCount > 0, found.candidateCount <= (wanted - 1) * size else { return found }
                let last = (found.candidateCount - 1) / size
                return try query.page(last * size..<(last + 1) * size, on: connection)
            }
        }
        let pageCount = max(1, (found.candidateCount + size - 1) / size)
        let current = min(asked, pageCount)
        let first = (current - 1) * size
        func button(_ page: Int, _ label: String) -> PageButton { PageButton(page: "\(page)", label: renderer.text(label)) }
        let model = SearchModel(
            patient: form.text("patient") ?? "", user: form.text("user") ?? "", team: form.text("team") ?? "", from: form.text("from") ?? "",
            to: form.text("to") ?? "", actions: SearchModel.choices(AccessAction.allCases.map(\.rawValue), search.action?.rawValue),
            purposes: SearchModel.choices(AccessPurpose.allCases.map(\.rawValue), search.purpose?.rawValue),
            results: SearchModel.choices(AccessResult.allCases.map(\.rawValue), search.result?.rawValue), searched: true,
            entries: found.entries.map(Self.row), count: Self.grouped(UInt64(found.candidateCount)), limitReached: found.candidateCount >= Self.searchLimit,
            mismatched: found.mismatched.map { "\($0)" }, anyMismatched: !found.mismatched.isEmpty,
            before: current > 1 ? [button(1, "search_first_page"), button(current - 1, "search_previous_page")] : [],
            after: current < pageCount ? [button(current + 1, "search_next_page"), button(pageCount, "search_last_page")] : [],
            position: "\(renderer.text("search_page")) \(current) \(renderer.text("search_page_of")) \(pageCount) — "
                + "\(renderer.text("search_rows")) \(first + 1) \(renderer.text("search_rows_to")) \(min(first + size, found.candidateCount))",
            paged: pageCount > 1)
        checked.audit.note(
            "\(found.candidateCount) entries, page \(current) of \(pageCount)"
                + (found.mismatched.isEmpty ? "" : "; search columns not matching their hashed entry: \(found.mismatched.map(String.init).joined(separator: ","))"))
        return .page("journal-search", title: "search_title", model)
    }

    static func row(_ entry: JournalEntry) -> EntryRowModel {
        EntryRowModel(
            sequence: "\(entry.sequence)", occurred: ParisTime.format(microseconds: entry.occurredAt), user: entry.actorUsername ?? entry.actorUserID ?? "-",
            role: entry.actorRole ?? "-", team: entry.actorTeam ?? "-", action: entry.action, object: entry.objectType + (entry.objectID.map { " " + $0 } ?? ""),
            patient: entry.patientID ?? "-", purpose: entry.purpose ?? "-", result: entry.result + (entry.reason.map { " (\($0))" } ?? ""),
            denied: entry.result != "success")
    }

    // MARK: One entry and its proof

    struct Field: Sendable {
        let name: String
        let value: String
    }

    struct EntryModel: Sendable {
        let sequence: String
        let fields: [Field]
        let covered: Bool
        let checkpoint: String
    }

    func journalEntry(_ checked: Checked, sequence text: String?) async throws -> ConsoleView {
        guard let text, let sequence = UInt64(text) else { throw ConsolePageError.notFound }
        checked.audit.touched(object: "\(sequence)")
        let (stored, covering) = try await pool.withConnection { connection in
            try await connection.perform { connection -> (StoredEntry?, CheckpointRecord?) in
                guard sequence < (try JournalDatabase.treeSize(on: connection)) else { return (nil, nil) }
                return (try JournalDatabase.entry(sequence, on: connection), try JournalDatabase.firstCheckpoint(covering: sequence, on: connection))
            }
        }
        guard let stored else { throw ConsolePageError.notFound }
        let entry = stored.entry
        if let patient = entry.patientID.flatMap(UUID.init(uuidString:)) { checked.audit.touched(patient: patient) }
        let pairs: [(String, String?)] = [
            ("field_sequence", "\(entry.sequence)"), ("field_occurred", ParisTime.format(microseconds: entry.occurredAt)),
            ("field_sequenced", ParisTime.format(microseconds: entry.sequencedAt)), ("field_source", entry.source), ("field_request", entry.requestID),
            ("field_user_id", entry.actorUserID), ("field_user", entry.actorUsername), ("field_role", entry.actorRole), ("field_team", entry.actorTeam),
            ("field_action", entry.action), ("field_object", entry.objectType + (entry.objectID.map { " " + $0 } ?? "")), ("field_patient", entry.patientID),
            ("field_purpose", entry.purpose), ("field_result", entry.result), ("field_reason", entry.reason), ("field_client", entry.clientIP),
            ("field_user_agent", entry.userAgent), ("field_leaf_hash", Self.hex(stored.leafHash)), ("field_chain_hash", Self.hex(stored.chainHash)),
        ]
        let model = EntryModel(
            sequence: "\(sequence)", fields: pairs.map { Field(name: renderer.text($0.0), value: $0.1 ?? "—") }, covered: covering != nil,
            checkpoint: covering.map { "#\($0.id) (\(renderer.text("checkpoint_size")) \(Self.grouped($0.treeSize)), \(ParisTime.format(microseconds: $0.issuedAt)))" } ?? "")
        return .page("journal-entry", title: "entry_title", model)
    }

    /// The c2sp.org/tlog-proof@v1 text of entry `sequence` against the latest
    /// checkpoint, as `osmosectl journal prove inclusion` prints it.
    func inclusionProof(_ checked: Checked, sequence text: String?) async throws -> ConsoleView {
        guard let text, let sequence = UInt64(text) else { throw ConsolePageError.notFound }
        checked.audit.touched(object: "\(sequence)")
        let proof = try await pool.withConnection { connection in
            try await connection.transaction(isolation: .repeatableRead) { connection -> String? in
                guard let latest = try JournalDatabase.latestCheckpoint(on: connection), sequence < latest.treeSize else { return nil }
                return try JournalProofs.inclusion(of: sequence, checkpoint: latest.id, on: connection)
            }
        }
        guard let proof else { throw ConsolePageError.notFound }
        return ConsoleView(body: .download(filename: "osmose-journal-\(sequence).proof", contentType: "text/plain; charset=utf-8", bytes: Array(proof.utf8)))
    }

    // MARK: Helpers

    static func grouped(_ value: UInt64) -> String {
        let digits = Array(String(value))
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { out.append("\u{202F}") }
            out.append(digit)
        }
        return out
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}

extension Date {
    /// The first moment of this moment's day in Paris.
    var startOfParisDay: Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = ParisTime.zone
        return calendar.startOfDay(for: self)
    }
}
