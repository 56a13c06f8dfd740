import Age
import ArgumentParser
import CareRecords
import Foundation
import Journal
import Keyring
import Settings
import Store
import SubjectRequests

/// The DPO's commands: the register of data-subject requests and everything done
/// to answer them (docs/dpo-runbook.md).
struct SubjectRequestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dsar", abstract: "Data-subject requests (DPO): register, deadlines, access packs, rectification, restriction, answers, evidence.",
        discussion: """
            Connect as the osmose_dsar role (dsar.database). Commands that read or write personal data need the master key \
            (--master-key, else dsar.master_key_file); packs and evidence files can instead be queued for osmose-dsard (--queue), \
            which holds it. Every change is a step of the request's evidence file and a journal event (purpose subject-request).
            """,
        subcommands: [
            Open.self, Show.self, List.self, Identity.self, Note.self, Notes.self, Attach.self, Documents.self, Document.self, Extend.self, Review.self,
            Redact.self, Redactions.self, Unredact.self, Approve.self, Export.self, Deliver.self, Rectify.self, Recipients.self, Restrict.self, Lift.self,
            Answer.self, EraseStaff.self, Evidence.self, Close.self,
        ])

    // MARK: Shared options

    struct DPOOptions: ParsableArguments {
        @OptionGroup var global: GlobalOptions
        @Option(help: "The master key file (else dsar.master_key_file).") var masterKey: String?

        var settings: SuiteConfiguration.SubjectRequests { get throws { try global.loadConfiguration().subjectRequests } }

        var timeZone: TimeZone {
            get throws {
                let name = try settings.timeZone
                guard let zone = TimeZone(identifier: name) else { throw ValidationError("dsar.time_zone \(name) is not a known time zone") }
                return zone
            }
        }

        /// The DPO running this command.
        var actor: SystemActor { operatorActor(.dpo) }

        /// Opens a connection as the DPO's role, loads the keyring when a master key
        /// is given (or `required`), and runs `body` with the register.
        func withRegister<Result>(needsKey required: Bool, _ body: (RequestRegister, Connection) async throws -> Result) async throws -> Result {
            let configuration = try global.loadConfiguration()
            let keyFile = masterKey ?? configuration.subjectRequests.masterKeyFile
            if required && keyFile == nil {
                throw SubjectRequestError(.masterKeyRequired, "this needs the master key: pass --master-key FILE or set dsar.master_key_file")
            }
            let master = try keyFile.map { try MasterKey.load(path: $0) }
            let zone = try timeZone
            return try await Connection.withConnection(
                global.database ?? configuration.subjectRequestConnection, applicationName: "osmosectl", logger: global.logger
            ) { connection in
                var ring: DataKeyRing?
                if let master { ring = try await DataKeyRing.load(on: connection, master: master) }
                return try await body(RequestRegister(actor: actor, timeZone: zone, ring: ring), connection)
            }
        }

        /// The keyring of `register` (present when the command asked for the key).
        func ring(_ register: RequestRegister) throws -> DataKeyRing {
            guard let ring = register.keyring else {
                throw SubjectRequestError(.masterKeyRequired, "this needs the master key: pass --master-key FILE or set dsar.master_key_file")
            }
            return ring
        }
    }

    /// A moment written as a date (the request's day: the end of that day in the
    /// controller's time zone, or now if earlier) or an RFC 3339 time.
    static func moment(_ text: String, option: String, timeZone: TimeZone) throws -> Date {
        if let moment = rfc3339Moment(text) { return moment }
        guard let day = try? CivilDate(parsing: text) else {
            throw ValidationError("--\(option) must be a date (2026-01-31) or an RFC 3339 time (2026-01-31T09:30:00+01:00): \(text.prefix(40)) is neither")
        }
        return min(day.endOfDay(in: timeZone).addingTimeInterval(-1), Date())
    }

    static func day(_ text: String, option: String) throws -> CivilDate {
        do {
            return try CivilDate(parsing: text, what: "--\(option)")
        } catch let error as SubjectRequestError {
            throw ValidationError(error.message)
        }
    }

    static func choice<Value: RawRepresentable & CaseIterable>(_ text: String, option: String, as _: Value.Type) throws -> Value where Value.RawValue == String {
        guard let value = Value(rawValue: text) else {
            throw ValidationError("--\(option) must be one of \(Value.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }

    static func printRecord(_ record: RequestRecord) {
        print("request \(record.number) (\(record.kind.rawValue), \(record.status)\(record.outcome.map { ": \($0.rawValue)" } ?? "")\(record.disposal == nil ? "" : ", disposed of"))")
        if let disposal = record.disposal {
            // The subject, the requester and the identity check were erased: say so, not "unknown".
            print("  disposed of      \(isoTimestamp(disposal.at)): its retention term ended, its personal data was erased (record and evidence chain kept)")
            print("  by plan          \(disposal.planID), SHA-256 \(disposal.planSHA256), approved by \(disposal.approvedBy) at \(isoTimestamp(disposal.approvedAt))")
            print("  subject, requester, identity check: erased at disposal")
            print("  received         \(isoTimestamp(record.receivedAt)) (day \(record.receivedOn)) — \(record.capacity.rawValue)")
        } else {
            print("  subject          \(record.patientID.map { "patient \($0.uuidString.lowercased())" } ?? "staff account \(record.staffUsername ?? "?")")")
            print("  requester        \(record.requesterName ?? "(encrypted)") — \(record.capacity.rawValue)\(record.representation.map { " of a \($0.rawValue)" } ?? "")")
            if let contact = record.requesterContact { print("  contact          \(contact)") }
            print("  received         \(isoTimestamp(record.receivedAt)) (day \(record.receivedOn))")
        }
        switch (record.disposal, record.identityCheck) {
        case (.some, _): break
        case (nil, let check?): print("  identity checked \(isoTimestamp(check.checkedAt)) by \(check.checkedBy): \(check.documents ?? "(encrypted)")")
        case (nil, nil): print("  identity         NOT CHECKED")
        }
        for deadline in record.deadlines {
            let when = deadline.dueOn.map { "due \($0)" } ?? deadline.earliest.map { "not before \(isoTimestamp($0))" } ?? ""
            print("  deadline         \(deadline.rule.rawValue): \(when)\(deadline.inForce ? "" : " (superseded)")")
            print("                   \(deadline.rule.citation)")
        }
        if let due = record.dueOn { print("  answer by        \(due)") }
        if record.lateAcknowledged { print("  registered late  (acknowledged)") }
    }

    // MARK: Register

    struct Open: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a request: the subject is matched through the blind-index search; deadlines are computed and stored.")
        @OptionGroup var options: DPOOptions
        @Option(help: "access, rectification, restriction, erasure, objection or portability.") var kind: String
        @Option(help: "The patient's last name (with --first-name and --birth-date).") var lastName: String?
        @Option(help: "The patient's first name.") var firstName: String?
        @Option(help: "The patient's birth date, YYYY-MM-DD.") var birthDate: String?
        @Option(help: "The patient's INS.") var ins: String?
        @Option(help: "The patient's id; with a name, chooses among several patients that match it.") var patientId: String?
        @Option(help: "A staff member's own account (login name), for data outside the health record.") var staff: String?
        @Option(help: "patient, legal-representative, heir, chosen-doctor or staff-member.") var capacity: String
        @Option(help: "For a legal representative: minor or protected-adult.") var representation: String?
        @Option(help: "The requester's name.") var requesterName: String
        @Option(help: "Where to answer the requester.") var requesterContact: String?
        @Option(help: "When the request was received: a date or an RFC 3339 time.") var received: String
        @Flag(help: "The request does not ask for health information (CSP L1111-7 then does not apply).") var noHealthInformation = false
        @Option(help: "Who checked the requester's identity (with --identity-documents).") var identityCheckedBy: String?
        @Option(help: "When the identity was checked (default: now).") var identityCheckedAt: String?
        @Option(help: "The documents seen.") var identityDocuments: String?
        @Flag(help: "Register a request whose deadline is already past, recording the delay.") var acknowledgeLate = false
        @Flag(help: "Print the request as JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let zone = try options.timeZone
                let subject: SubjectIdentification
                var chosen: UUID?
                if let patientId { guard let id = UUID(uuidString: patientId) else { throw ValidationError("--patient-id must be a UUID") }; chosen = id }
                if let staff {
                    subject = .staff(username: staff)
                } else if let ins {
                    subject = .patientINS(ins)
                } else if let lastName, let firstName, let birthDate {
                    subject = .patientName(lastName: lastName, firstName: firstName, birthDate: birthDate)
                } else if let chosen {
                    subject = .patientID(chosen)
                } else {
                    throw ValidationError("name the subject: --last-name, --first-name and --birth-date together, or --ins, or --patient-id, or --staff")
                }
                var check: IdentityCheck?
                if let by = identityCheckedBy {
                    guard let documents = identityDocuments else { throw ValidationError("--identity-checked-by needs --identity-documents") }
                    check = IdentityCheck(
                        checkedBy: by, checkedAt: try identityCheckedAt.map { try SubjectRequestCommand.moment($0, option: "identity-checked-at", timeZone: zone) } ?? Date(),
                        documents: documents)
                }
                let new = NewRequest(
                    kind: try SubjectRequestCommand.choice(kind, option: "kind", as: RequestKind.self), subject: subject, chosenPatient: chosen,
                    capacity: try SubjectRequestCommand.choice(capacity, option: "capacity", as: RequesterCapacity.self),
                    representation: try representation.map { try SubjectRequestCommand.choice($0, option: "representation", as: Representation.self) },
                    requesterName: requesterName, requesterContact: requesterContact,
                    receivedAt: try SubjectRequestCommand.moment(received, option: "received", timeZone: zone),
                    healthInformation: noHealthInformation ? false : nil, identityCheck: check, acknowledgeLate: acknowledgeLate)
                let record = try await options.withRegister(needsKey: true) { register, connection in
                    try await connection.transaction { connection in try register.open(new, on: connection) }
                }
                if json { try printJSON(record) } else { SubjectRequestCommand.printRecord(record) }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a request, its deadlines and its evidence file's steps.")
        @OptionGroup var options: DPOOptions
        @Argument(help: "The request's number.") var number: Int64
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let number = number
                let (record, steps) = try await options.withRegister(needsKey: false) { register, connection in
                    try await connection.transaction { connection in
                        (try register.request(number: number, on: connection), try EvidenceFiles(register: register).verify(number: number, on: connection))
                    }
                }
                if json {
                    try printJSON(record)
                    return
                }
                SubjectRequestCommand.printRecord(record)
                print("  evidence file    \(steps.steps.count) steps, \(steps.problems.isEmpty ? "chain intact" : "BROKEN: \(steps.problems.joined(separator: "; "))")")
                for step in steps.steps {
                    print("    \(step.position). \(JournalEntry.rfc3339(microseconds: step.occurredAt))  \(step.kind)  \(step.actor.split(separator: " ").first ?? "")")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The register: open requests, or those due soon (--due), or all (--all).")
        @OptionGroup var options: DPOOptions
        @Flag(help: "Only open requests due within --within days, or past due, soonest first.") var due = false
        @Option(help: "With --due: within this many days (default: dsar.warn_days).") var within: Int?
        @Flag(help: "Closed requests too.") var all = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if let within, !(0...366).contains(within) { throw ValidationError("--within must be between 0 and 366 days") }
            if within != nil && !due { throw ValidationError("--within goes with --due") }
        }

        func run() async throws {
            try await reportingFailures {
                let window = due ? (try within ?? options.settings.warnDays) : nil
                let openOnly = !all
                let summaries = try await options.withRegister(needsKey: false) { register, connection in
                    try await connection.perform { connection in try register.list(openOnly: openOnly, dueWithin: window, on: connection) }
                }
                if json { try printJSON(summaries); return }
                printTable(
                    ["NUMBER", "KIND", "CAPACITY", "RECEIVED", "DUE", "DAYS LEFT", "IDENTITY", "STATUS"],
                    summaries.map {
                        [
                            String($0.number), $0.kind.rawValue, $0.capacity.rawValue, $0.receivedOn.description, $0.dueOn?.description ?? "-",
                            $0.daysLeft.map { $0 < 0 ? "LATE \(-$0)" : String($0) } ?? "-", $0.identityChecked ? "checked" : "NOT CHECKED",
                            $0.status + ($0.outcome.map { " (\($0.rawValue))" } ?? "") + ($0.disposed ? ", disposed of" : ""),
                        ]
                    })
            }
        }
    }

    struct Identity: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record the check of the requester's identity (and capacity).")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Option(help: "Who checked.") var checkedBy: String
        @Option(help: "When (default: now).") var checkedAt: String?
        @Option(help: "The documents seen.") var documents: String

        func run() async throws {
            try await reportingFailures {
                let check = IdentityCheck(
                    checkedBy: checkedBy, checkedAt: try checkedAt.map { try SubjectRequestCommand.moment($0, option: "checked-at", timeZone: try options.timeZone) } ?? Date(),
                    documents: documents)
                let number = number
                _ = try await options.withRegister(needsKey: true) { register, connection in
                    try await connection.transaction { connection in try register.checkIdentity(number: number, check, on: connection) }
                }
                print("request \(number): identity check recorded")
            }
        }
    }

    struct Note: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a note to a request's file (encrypted).")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Argument(help: "The note; - reads it from standard input.") var text: String

        func run() async throws {
            try await reportingFailures {
                let body = text == "-" ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) : text
                let number = number
                let id = try await options.withRegister(needsKey: true) { register, connection in
                    try await connection.transaction { connection in try register.addNote(number: number, body, on: connection) }
                }
                print("request \(number): note \(id.uuidString.lowercased()) added")
            }
        }
    }

    struct Notes: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The notes, extension notices and answers of a request.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let number = number
                let notes = try await options.withRegister(needsKey: true) { register, connection in
                    try await connection.perform { connection in try register.notes(number: number, on: connection) }
                }
                if json { try printJSON(notes); return }
                for note in notes { print("-- \(note.kind), \(isoTimestamp(note.writtenAt)), \(note.writtenBy)\n\(note.text)\n") }
            }
        }
    }

    struct Attach: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Attach a document received with the request; it is stored encrypted, never in clear.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Argument(help: "The file.") var file: String
        @Option(help: "Its media type (default: from its extension).") var mediaType: String?

        func run() async throws {
            try await reportingFailures {
                guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
                let extensionTypes = ["pdf": "application/pdf", "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "txt": "text/plain", "tif": "image/tiff", "tiff": "image/tiff"]
                let type = mediaType ?? extensionTypes[(file as NSString).pathExtension.lowercased()] ?? "application/octet-stream"
                let (number, name) = (number, (file as NSString).lastPathComponent)
                let attached = try await options.withRegister(needsKey: true) { register, connection in
                    try await connection.transaction { connection in
                        try register.attach(number: number, fileName: name, mediaType: type, content: Array(data), on: connection)
                    }
                }
                print("request \(number): document \(attached.id.uuidString.lowercased()) attached (\(data.count) bytes, \(attached.sha256)); the original file is yours to destroy")
            }
        }
    }

    struct Documents: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a request's documents.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64

        func run() async throws {
            try await reportingFailures {
                let number = number
                let documents = try await options.withRegister(needsKey: true) { register, connection in
                    try await connection.perform { connection in try register.documents(number: number, on: connection) }
                }
                printTable(
                    ["ID", "NAME", "TYPE", "BYTES", "SHA-256", "ATTACHED"],
                    documents.map { [$0.id.uuidString.lowercased(), $0.fileName, $0.mediaType, String($0.size), $0.sha256, isoTimestamp($0.attachedAt)] })
            }
        }
    }

    struct Document: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a document's content to standard output (pipe it to a viewer: it is never written to disk in clear).")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Argument(help: "The document's id.") var document: String

        func run() async throws {
            try await reportingFailures {
                guard let id = UUID(uuidString: document) else { throw ValidationError("the document's id is a UUID (osmosectl dsar documents)") }
                let number = number
                let content = try await options.withRegister(needsKey: true) { register, connection in
                    try await connection.transaction { connection in try register.documentContent(number: number, document: id, on: connection) }
                }
                FileHandle.standardOutput.write(Data(content))
            }
        }
    }

    struct Extend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Extend the GDPR deadline by two months: the reasoned notice must have been sent within the first month (GDPR art. 12(3)).")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Option(help: "The day the notice was sent, YYYY-MM-DD.") var noticeOn: String
        @Option(help: "The reasons given in the notice.") var reasons: String

        func run() async throws {
            try await reportingFailures {
                let day = try SubjectRequestCommand.day(noticeOn, option: "notice-on")
                let (number, reasons) = (number, reasons)
                let record = try await options.withRegister(needsKey: true) { register, connection in
                    try await connection.transaction { connection in try register.extend(number: number, noticeOn: day, reasons: reasons, on: connection) }
                }
                print("request \(number): extended; answer by \(record.dueOn?.description ?? "?")")
            }
        }
    }

    // MARK: Access pack

    struct Review: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The draft access pack, to review before approval: to standard output, or sealed for your age key (--recipient, --out).",
            discussion: "Values are named by table, row key and column, as redact takes them. Nothing is written to disk in clear.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Flag(help: "Name staff (else by role and team).") var withStaffNames = false
        @Option(help: "text, json or html.") var format = "text"
        @Option(help: "Seal the draft for this age recipient instead (with --out).") var recipient: String?
        @Option(help: "Where to write the sealed draft.") var out: String?
        @Flag(help: "Have osmose-dsard build it (needs --recipient and --out).") var queue = false

        func run() async throws {
            try await reportingFailures {
                guard ["text", "json", "html"].contains(format) else { throw ValidationError("--format must be text, json or html") }
                if let recipient, let out {
                    let result = try await SubjectRequestCommand.perform(
                        .review(number: number, staffNames: withStaffNames, recipient: recipient), queue: queue, options: options)
                    try SubjectRequestCommand.write(result, to: out)
                    print("draft of request \(number) sealed for \(recipient.prefix(16))… in \(out) (\(result.summary["draft"] ?? "")); \(result.summary["consultations"] ?? "?") accesses")
                    return
                }
                guard recipient == nil, out == nil, !queue else { throw ValidationError("--recipient and --out go together (and --queue needs both)") }
                let (number, staffNames) = (number, withStaffNames)
                let pack = try await options.withRegister(needsKey: true) { register, connection in
                    let workflow = AccessPackWorkflow(register: register, ring: try options.ring(register))
                    return try await connection.transaction(isolation: .repeatableRead) { connection in
                        try workflow.review(number: number, staffNames: staffNames, on: connection)
                    }
                }
                switch format {
                case "json": FileHandle.standardOutput.write(Data(try pack.canonicalJSON()))
                case "html": print(AccessPackHTML.render(pack, establishment: try options.settings.establishment))
                default:
                    for table in pack.tables where !table.rows.isEmpty {
                        print("== \(table.table) — \(table.title)")
                        for row in table.rows {
                            for column in row.columns.keys.sorted() {
                                let cell = row.columns[column]!
                                guard cell.source == .decrypted || cell.source == .redacted else { continue }
                                print("  \(table.table) \(row.key) \(column): \(cell.value ?? "—")")
                            }
                        }
                    }
                    print("== \(pack.consultations.count) accesses, proven against checkpoint #\(pack.journal.checkpointID); \(pack.redactions.count) redactions")
                }
            }
        }
    }

    struct Redact: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a third party's passage from the pack (recorded: where, why, the text encrypted).")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Option(help: "The table, e.g. care.transmissions.") var table: String
        @Option(help: "The row's key, as review prints it.") var row: String
        @Option(help: "The column, e.g. body.") var column: String
        @Option(help: "The exact text to remove.") var text: String
        @Option(help: "third-party or other-patient.") var reason = "third-party"

        func run() async throws {
            try await reportingFailures {
                let redaction = Redaction(
                    table: table, row: row, column: column, text: text, reason: try SubjectRequestCommand.choice(reason, option: "reason", as: RedactionReason.self))
                let number = number
                let id = try await options.withRegister(needsKey: true) { register, connection in
                    let workflow = AccessPackWorkflow(register: register, ring: try options.ring(register))
                    return try await connection.transaction(isolation: .repeatableRead) { connection in try workflow.redact(number: number, redaction, on: connection) }
                }
                print("request \(number): redaction \(id.uuidString.lowercased()) recorded")
            }
        }
    }

    struct Redactions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The redactions recorded for a request's pack.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64

        func run() async throws {
            try await reportingFailures {
                let number = number
                let redactions = try await options.withRegister(needsKey: true) { register, connection in
                    let workflow = AccessPackWorkflow(register: register, ring: try options.ring(register))
                    return try await connection.perform { connection in try workflow.recordedRedactions(number: number, on: connection) }
                }
                printTable(
                    ["ID", "WHERE", "REASON", "TEXT"],
                    redactions.map { [$0.id.uuidString.lowercased(), "\($0.redaction.table) \($0.redaction.row) \($0.redaction.column)", $0.redaction.reason.rawValue, $0.redaction.text] })
            }
        }
    }

    struct Unredact: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Withdraw a redaction before the pack is released.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Argument(help: "The redaction's id.") var redaction: String

        func run() async throws {
            try await reportingFailures {
                guard let id = UUID(uuidString: redaction) else { throw ValidationError("the redaction's id is a UUID (osmosectl dsar redactions)") }
                let number = number
                try await options.withRegister(needsKey: true) { register, connection in
                    let workflow = AccessPackWorkflow(register: register, ring: try options.ring(register))
                    try await connection.transaction { connection in try workflow.withdrawRedaction(number: number, redaction: id, on: connection) }
                }
                print("request \(number): redaction withdrawn")
            }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve the pack as it stands (kept encrypted until released; its digest recorded). Approving again before release replaces it.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Flag(help: "Name staff in the pack (your decision, recorded).") var withStaffNames = false
        @Flag(help: "Have osmose-dsard do it.") var queue = false

        func run() async throws {
            try await reportingFailures {
                let result = try await SubjectRequestCommand.perform(.approve(number: number, staffNames: withStaffNames), queue: queue, options: options)
                print(
                    "request \(number): pack approved, \(result.summary["consultations"] ?? "?") accesses proven against checkpoint #\(result.summary["checkpoint"] ?? "?"), \(result.summary["redactions"] ?? "0") redactions; content \(result.summary["content"] ?? "")")
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Release the approved pack, sealed (age) with a passphrase or for the requester's age key, once; its digest is recorded.",
            discussion: "The file holds dossier.html (printable, in French), dossier.json, dossier.fhir.json and the journal's proofs.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Option(help: "Where to write the sealed pack (must not exist).") var out: String
        @Option(help: "The requester's age key (age1…).") var recipient: String?
        @Option(help: "A file holding the passphrase (first line), given to the requester by another channel.") var passphraseFile: String?
        @Flag(help: "Have osmose-dsard build it (needs --recipient).") var queue = false

        func run() async throws {
            try await reportingFailures {
                guard (recipient == nil) != (passphraseFile == nil) else { throw ValidationError("give either --recipient or --passphrase-file") }
                guard !FileManager.default.fileExists(atPath: out) else { throw ValidationError("\(out) exists; a pack is never written over a file") }
                if let recipient {
                    let result = try await SubjectRequestCommand.perform(.release(number: number, recipient: recipient), queue: queue, options: options)
                    try SubjectRequestCommand.write(result, to: out)
                    print("request \(number): pack released in \(out) (\(result.summary["sealed_file"] ?? "")), content \(result.summary["content"] ?? "")")
                    return
                }
                guard !queue else { throw ValidationError("a passphrase is never queued: run it here with the master key, or use --recipient") }
                guard let data = FileManager.default.contents(atPath: passphraseFile!),
                    let passphrase = String(data: data, encoding: .utf8)?.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init)
                else { throw ValidationError("cannot read the passphrase from \(passphraseFile!)") }
                let (number, out) = (number, out)
                let released = try await options.withRegister(needsKey: true) { register, connection in
                    let workflow = AccessPackWorkflow(register: register, ring: try options.ring(register))
                    let establishment = try options.settings.establishment
                    return try await connection.transaction { connection in
                        try workflow.release(number: number, to: .passphrase(passphrase), path: out, establishment: establishment, on: connection)
                    }
                }
                print("request \(number): pack released in \(out) (\(released.file.sha256)), content \(released.contentSHA256)")
            }
        }
    }

    struct Deliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record how and when the released pack reached the requester.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Option(help: "post, hand, secure-mail or download.") var method: String
        @Option(help: "When (default: now).") var at: String?

        func run() async throws {
            try await reportingFailures {
                let method = try SubjectRequestCommand.choice(method, option: "method", as: DeliveryMethod.self)
                let moment = try at.map { try SubjectRequestCommand.moment($0, option: "at", timeZone: try options.timeZone) } ?? Date()
                let number = number
                try await options.withRegister(needsKey: true) { register, connection in
                    let workflow = AccessPackWorkflow(register: register, ring: try options.ring(register))
                    try await connection.transaction { connection in try workflow.recordDelivery(number: number, method: method, at: moment, on: connection) }
                }
                print("request \(number): delivery recorded (\(method.rawValue))")
            }
        }
    }

    /// Runs a pack operation here (with the master key) or through osmose-dsard's queue.
    static func perform(_ operation: PackOperation, queue: Bool, options: DPOOptions) async throws -> PackOperationResult {
        let settings = try options.settings
        let packSettings = PackSettings(timeZone: try options.timeZone, establishment: settings.establishment)
        return try await options.withRegister(needsKey: !queue) { register, connection in
            guard queue else {
                let scratch = NSTemporaryDirectory()
                return try await PackOperations.perform(
                    operation, actor: register.actor, ring: try options.ring(register), settings: packSettings, scratch: scratch, on: connection)
            }
            let id = try await connection.transaction { connection in try PackJobs.enqueue(operation, requestedBy: operatorIdentity, on: connection) }
            FileHandle.standardError.write(Data("osmosectl: queued job \(id.uuidString.lowercased()) for osmose-dsard; waiting…\n".utf8))
            for _ in 0..<600 {
                let status = try await connection.perform { connection in try PackJobs.status(id, on: connection) }
                switch status.state {
                case "done":
                    try await connection.perform { connection in try PackJobs.collected(id, on: connection) }
                    guard let result = status.result else { throw SubjectRequestError(.jobFailed, "job \(id) finished without a result") }
                    return result
                case "failed": throw SubjectRequestError(.jobFailed, "osmose-dsard could not do it: \(status.error ?? "no reason given")")
                default: try await Task.sleep(for: .milliseconds(500))
                }
            }
            throw SubjectRequestError(.jobFailed, "osmose-dsard did not take job \(id.uuidString.lowercased()) within 5 minutes: is it running? (it stays queued)")
        }
    }

    /// Writes a sealed result to `path` (mode 0600, never over an existing file).
    static func write(_ result: PackOperationResult, to path: String) throws {
        guard let sealed = result.sealed else { throw SubjectRequestError(.internalError, "the operation wrote no sealed file") }
        try writeSecretFile(path, sealed)
    }

    // MARK: Rectification, restriction, answers

    struct Rectify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rectify the patient's identity as a new version carrying the request's id; then list who read the old values (GDPR art. 19).")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Option(name: .customLong("set"), help: "field=value (last_name, first_name, birth_date, sex, ins); repeat for each.") var assignments: [String] = []
        @Option(help: "Wait this long for the journal to list the recipients (seconds).") var wait = 30

        func run() async throws {
            try await reportingFailures {
                var values: [String: String] = [:]
                for assignment in assignments {
                    guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else { throw ValidationError("--set takes field=value, not \(assignment.prefix(30))") }
                    values[String(assignment[..<equals])] = String(assignment[assignment.index(after: equals)...])
                }
                let (number, wait, fields) = (number, wait, values)
                let record = try await options.withRegister(needsKey: true) { register, connection in
                    let rectifications = Rectifications(register: register, ring: try options.ring(register))
                    return try await connection.transaction { connection in try rectifications.rectify(number: number, values: fields, on: connection) }
                }
                print("request \(number): \(record.fields.joined(separator: ", ")) rectified (version \(record.oldVersion) → \(record.newVersion))")
                try await Recipients.listing(number: number, options: options, wait: wait)
            }
        }
    }

    struct Recipients: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Who read the rectified values before the rectification (from the journal), to notify (GDPR art. 19).")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Option(help: "Wait this long for the journal (seconds).") var wait = 0
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures { try await Self.listing(number: number, options: options, wait: wait, json: json) }
        }

        static func listing(number: Int64, options: DPOOptions, wait: Int, json: Bool = false) async throws {
            let deadline = Date().addingTimeInterval(TimeInterval(wait))
            while true {
                do {
                    let records = try await options.withRegister(needsKey: true) { register, connection in
                        let rectifications = Rectifications(register: register, ring: try options.ring(register))
                        return try await connection.transaction { connection in try rectifications.listRecipients(number: number, on: connection) }
                    }
                    if json { try printJSON(records); return }
                    for record in records {
                        print("rectification of \(record.fields.joined(separator: ", ")) on \(isoTimestamp(record.rectifiedAt)): \(record.recipients?.count ?? 0) recipient(s) of the old values")
                        printTable(
                            ["USER", "ROLE", "TEAM", "READS", "FIRST", "LAST", "FIELDS"],
                            (record.recipients ?? []).map {
                                [$0.username ?? $0.userID ?? "?", $0.role ?? "-", $0.team ?? "-", String($0.reads), $0.firstRead, $0.lastRead, $0.fields.joined(separator: ",")]
                            })
                    }
                    return
                } catch let error as SubjectRequestError where error.code == .journalNotReady && Date() < deadline {
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    struct Restrict: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restrict the processing of the request's patient (GDPR art. 18): hidden from lists and searches, opened only on a ground of art. 18(2), never exported.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64

        func run() async throws {
            try await reportingFailures {
                let number = number
                _ = try await options.withRegister(needsKey: false) { register, connection in
                    try await connection.transaction { connection in try SubjectRequests.Restrictions(register: register).restrict(number: number, on: connection) }
                }
                print("request \(number): the patient's processing is restricted")
            }
        }
    }

    struct Lift: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lift the restriction (tell the requester beforehand: GDPR art. 18(3)).")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Option(help: "accuracy-verified, objection-assessed, data-subject-consent, request-withdrawn or legal-claims-ended.") var reason: String

        func run() async throws {
            try await reportingFailures {
                let reason = try SubjectRequestCommand.choice(reason, option: "reason", as: RestrictionLiftReason.self)
                let number = number
                _ = try await options.withRegister(needsKey: false) { register, connection in
                    try await connection.transaction { connection in try SubjectRequests.Restrictions(register: register).lift(number: number, reason: reason, on: connection) }
                }
                print("request \(number): restriction lifted (\(reason.rawValue))")
            }
        }
    }

    struct Answer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The reasoned answer to an erasure, objection or portability request, with its legal basis: proposed, or recorded (--record).")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Flag(help: "Record the answer (its letter kept encrypted in the file).") var record = false
        @Option(help: "Decide otherwise than proposed: granted, partially-granted, refused, withdrawn, no-data (needs --reasons).") var decision: String?
        @Option(help: "Your reasons.") var reasons: String?

        func run() async throws {
            try await reportingFailures {
                let decided = try decision.map { try SubjectRequestCommand.choice($0, option: "decision", as: RequestOutcome.self) }
                let controller = ControllerStatus(rawValue: try options.settings.controller.rawValue) ?? .public
                let (number, record, reasons) = (number, record, reasons)
                let (answer, letter) = try await options.withRegister(needsKey: record) { register, connection in
                    let answers = SubjectRequests.Answers(register: register, controller: controller)
                    return try await connection.transaction { connection in
                        guard record else {
                            let proposal = try answers.proposal(number: number, on: connection)
                            return (proposal, proposal.text + "\n\n" + proposal.basis.map { "- \($0)" }.joined(separator: "\n"))
                        }
                        return try answers.answer(number: number, decision: decided, reasons: reasons, on: connection)
                    }
                }
                print("\(record ? "recorded" : "proposed"): \(decided?.rawValue ?? answer.outcome.rawValue)\(answer.offersRestriction ? " (restriction offered)" : "")\(answer.carriedOut ? " (carried out: osmosectl dsar erase-staff)" : "")")
                print(letter)
            }
        }
    }

    struct EraseStaff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "erase-staff", abstract: "Erase a departed staff member's data outside the health record (display name, password hash; sessions ended). Use --dry-run first.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Flag(help: "Say what would change; change nothing.") var dryRun = false

        func run() async throws {
            try await reportingFailures {
                let (number, dryRun) = (number, dryRun)
                let erasure = try await options.withRegister(needsKey: false) { register, connection in
                    try await connection.transaction { connection in
                        try SubjectRequests.Answers(register: register, controller: .public).eraseStaffData(number: number, dryRun: dryRun, on: connection)
                    }
                }
                print(
                    "\(dryRun ? "would erase" : "erased") the data of account \(erasure.username): display name (\(erasure.displayNameBefore)) → \"\(erasure.displayNameAfter)\", password hash overwritten, \(erasure.sessionsEnded) open session(s) ended; the login name stays in the access journal")
            }
        }
    }

    struct Evidence: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The request's evidence file (one JSON file for the CNIL), sealed for an age key or with a passphrase; --verify only checks its chain.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Flag(help: "Only check the hash chain and print where it breaks.") var verify = false
        @Option(help: "Where to write it (must not exist).") var out: String?
        @Option(help: "The age key it is sealed for.") var recipient: String?
        @Option(help: "A file holding the passphrase it is sealed with.") var passphraseFile: String?
        @Flag(help: "Have osmose-dsard build it (needs --recipient).") var queue = false

        func run() async throws {
            try await reportingFailures {
                let number = number
                if verify {
                    let (steps, problems) = try await options.withRegister(needsKey: false) { register, connection in
                        try await connection.perform { connection in try EvidenceFiles(register: register).verify(number: number, on: connection) }
                    }
                    guard problems.isEmpty else {
                        for problem in problems { print("FAIL \(problem)") }
                        throw SubjectRequestError(.evidenceBroken, "the evidence file of request \(number) was altered: \(problems.count) problem(s)")
                    }
                    print("request \(number): \(steps.count) steps, chain intact")
                    return
                }
                guard let out else { throw ValidationError("give --out (or --verify)") }
                guard (recipient == nil) != (passphraseFile == nil) else { throw ValidationError("give either --recipient or --passphrase-file") }
                if let recipient {
                    let result = try await SubjectRequestCommand.perform(.evidence(number: number, recipient: recipient), queue: queue, options: options)
                    try SubjectRequestCommand.write(result, to: out)
                    print("request \(number): evidence file in \(out) (\(result.summary["evidence"] ?? "")): \(result.summary["steps"] ?? "?") steps, \(result.summary["problems"] ?? "?") problems")
                    return
                }
                guard !queue else { throw ValidationError("a passphrase is never queued: use --recipient") }
                guard let data = FileManager.default.contents(atPath: passphraseFile!),
                    let passphrase = String(data: data, encoding: .utf8)?.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init)
                else { throw ValidationError("cannot read the passphrase from \(passphraseFile!)") }
                let document = try await options.withRegister(needsKey: true) { register, connection in
                    try await connection.transaction(isolation: .repeatableRead) { connection in try EvidenceFiles(register: register).document(number: number, on: connection) }
                }
                let file = try SealedArchive.write([("evidence.json", try EvidenceFiles.json(document))], to: out, for: .passphrase(passphrase))
                print("request \(number): evidence file in \(out) (\(file.sha256)): \(document.steps.count) steps, \(document.problems.count) problems")
            }
        }
    }

    struct Close: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Close a request with its outcome.")
        @OptionGroup var options: DPOOptions
        @Argument var number: Int64
        @Option(help: "granted, partially-granted, refused, withdrawn or no-data.") var outcome: String

        func run() async throws {
            try await reportingFailures {
                let outcome = try SubjectRequestCommand.choice(outcome, option: "outcome", as: RequestOutcome.self)
                let number = number
                let record = try await options.withRegister(needsKey: false) { register, connection in
                    try await connection.transaction { connection in try register.close(number: number, outcome: outcome, on: connection) }
                }
                let late = record.dueOn.map { CivilDate.on(record.closedAt ?? Date(), in: (try? options.timeZone) ?? .gmt) > $0 } ?? false
                print("request \(number) closed (\(outcome.rawValue))\(late ? ", AFTER its deadline \(record.dueOn!)" : "")")
            }
        }
    }
}
