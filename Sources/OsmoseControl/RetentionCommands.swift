import ArgumentParser
import CareRecords
import Foundation
import Journal
import Keyring
import Retention
import Settings
import Store

/// `osmosectl retention …`: the DPO's plans, approvals, legal holds and
/// certificates, and the sysadmin's manual apply (what osmose-retentiond does daily).
struct RetentionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "Retention: what is due, the DPO's approval, legal holds, disposition certificates.",
        discussion: """
            The DPO reviews `retention plan`, approves its SHA-256 with `retention approve`, and osmose-retentiond \
            applies it at its next daily run (or `retention apply` now). Legal holds keep what they name. Every step \
            is journaled (action retention-admin). See docs/retention.md.
            """,
        subcommands: [
            Plan.self, Plans.self, Show.self, Approve.self, Apply.self, Hold.self, Certificates.self, Certificate.self, DateOfDeathCommand.self, Compact.self,
        ])

    /// The retention policy and the keyring, as the configuration names them.
    struct Context {
        let configuration: SuiteConfiguration
        let policy: LoadedRetentionPolicy

        init(_ options: GlobalOptions) throws {
            configuration = try options.loadConfiguration()
            policy = try LoadedRetentionPolicy.load(configuration)
        }

        /// The journal months and their cold archives, under archives.* and journal.verifier_keys.
        func journal(_ options: GlobalOptions) throws -> JournalMonthArchives {
            try JournalMonthArchives(
                directories: configuration.archives.directories, recipients: configuration.archives.recipients,
                verifierKeys: configuration.journal.verifierKeys, logger: options.logger)
        }

        /// The master key: `--master-key`, else retention.master_key_file.
        func master(_ file: String?) throws -> MasterKey {
            guard let path = file ?? configuration.retention.masterKeyFile else {
                throw ValidationError("pass --master-key FILE (birth dates and dates of death are encrypted), or set retention.master_key_file")
            }
            return try MasterKey.load(path: path)
        }
    }

    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List exactly what is due: per item, the action, the rule and the dates; store the plan and print its SHA-256.",
            discussion: """
                Without --at: the plan for today, to be approved by the DPO (retention approve). With --at a later day: \
                a preview of that day's effects (holds in force are assumed to stay), never approved. Items kept by \
                a legal hold are listed apart, with the hold. Sessions are counted; --json lists every item. Journal \
                months due are archived then purged (journal-month/YYYY-MM), archives past their term destroyed \
                (cold-archive/YYYY-MM).
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The day to compute the plan for (YYYY-MM-DD); today by default.") var at: String?
        @Option(help: "The master key file (else retention.master_key_file).") var masterKey: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let context = try Context(options)
                let master = try context.master(masterKey)
                let zone = TimeZone(identifier: context.policy.policy.careRecords.timeZone)!
                let today = CivilDate(Date(), in: zone)
                let asOf = try at.map { try CivilDate(parsing: $0) } ?? today
                guard asOf >= today else { throw ValidationError("--at \(asOf) is in the past: a plan shows what is due today or later") }
                let stored = try await options.withConnection { connection in
                    let ring = try await DataKeyRing.load(on: connection, master: master)
                    let builder = PlanBuilder(policy: context.policy.policy, policySHA256: context.policy.sha256, ring: ring, journal: try context.journal(options))
                    let plan = try await builder.plan(kind: asOf == today ? .reviewed : .preview, asOf: asOf, on: connection)
                    return try await connection.transaction { try PlanStore.save(plan, computedBy: operatorIdentity, on: $0) }
                }
                if json { return try printJSON(PlanJSON(stored)) }
                printPlan(stored)
            }
        }
    }

    struct Plans: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The most recent plans, their approval and their run.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let plans = try await options.withConnection { connection in try await connection.perform { try PlanStore.recent(on: $0) } }
                if json { return try printJSON(plans.map(PlanJSON.init)) }
                printTable(
                    ["PLAN", "KIND", "AS OF", "ITEMS", "HELD", "STATE", "APPROVED BY", "SHA-256"],
                    plans.map { stored in
                        [
                            "\(stored.id)", stored.plan.kind.rawValue, stored.plan.asOf.description, "\(stored.plan.items.count)", "\(stored.plan.held.count)",
                            stored.state, stored.approval?.approverName ?? "-", stored.sha256,
                        ]
                    })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a stored plan (its digest is checked first).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The plan's id.") var plan: Int64
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let stored = try await options.withConnection { connection in try await connection.perform { [plan] in try PlanStore.load(plan, on: $0) } }
                if json { return try printJSON(PlanJSON(stored)) }
                printPlan(stored)
            }
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The DPO approves a plan's SHA-256, with name and time (journaled); osmose-retentiond then applies it.",
            discussion: "Refused, with nothing recorded, for another plan's digest, a plan edited since it was stored, a preview, or a plan older than 31 days.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The plan's id.") var plan: Int64
        @Option(help: "The SHA-256 the plan printed.") var sha256: String
        @Option(help: "The DPO's full name, recorded with the approval.") var approver: String

        func run() async throws {
            try await reportingFailures {
                let approval = try await options.withConnection { connection in
                    try await connection.transaction { [plan, sha256, approver] in
                        try PlanStore.approve(plan, sha256: sha256, approverName: approver, by: operatorActor(.dpo), on: $0)
                    }
                }
                print("plan \(plan) approved by \(approval.approverName) at \(isoTimestamp(approval.approvedAt)) (sha256 \(approval.sha256))")
                print("osmose-retentiond applies it at its next run; or now: osmosectl retention apply \(plan)")
            }
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply an approved plan now, as osmose-retentiond would (each item checked again); --dry-run changes nothing.",
            discussion: "A run interrupted earlier is resumed. Prints each item's outcome and the disposition certificate's digest.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The plan's id.") var plan: Int64
        @Option(help: "The master key file (else retention.master_key_file).") var masterKey: String?
        @Flag(help: "Say what would be done; change nothing.") var dryRun = false
        @Flag(help: "Print JSON.") var json = false

        struct Output: Encodable {
            let plan: Int64
            let run: Int64?
            let dryRun: Bool
            let outcomes: [ItemOutcome]
            let certificateSHA256: String?
        }

        func run() async throws {
            try await reportingFailures {
                let context = try Context(options)
                let master = try context.master(masterKey)
                let report = try await options.withConnection { connection in
                    let ring = try await DataKeyRing.load(on: connection, master: master)
                    let applier = PlanApplier(
                        policy: context.policy.policy, policySHA256: context.policy.sha256, ring: ring, journal: try context.journal(options),
                        actor: operatorActor(.dpo),
                        batchSizes: .records(context.configuration.retention.batchSize), logger: options.logger)
                    return try await applier.apply(plan: plan, dryRun: dryRun, on: connection)
                }
                if json {
                    return try printJSON(
                        Output(plan: report.plan, run: report.run, dryRun: dryRun, outcomes: report.outcomes, certificateSHA256: report.certificateSHA256))
                }
                printTable(
                    ["ITEM", dryRun ? "WOULD BE" : "OUTCOME", "VALUES", "DETAIL"],
                    report.outcomes.map { [$0.key, $0.outcome.rawValue, "\($0.valuesRemoved)", $0.detail] })
                let done = report.outcomes.filter { $0.outcome == .done }.count
                if dryRun {
                    print("dry run: \(done) of \(report.outcomes.count) items would be applied; nothing was changed")
                } else {
                    print("plan \(report.plan), run \(report.run.map(String.init) ?? "-"): \(done) done, \(report.outcomes.count - done) skipped")
                    if let certificate = report.certificateSHA256 { print("disposition certificate sha256 \(certificate) (osmosectl retention certificate \(report.run ?? 0))") }
                }
            }
        }
    }

    struct Hold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Legal holds: what they name is never archived-and-purged, pseudonymised or destroyed while in force.",
            subcommands: [Add.self, Release.self, List.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Place a hold on a patient, an episode, or a period of the journal (journaled).",
                discussion: "Write no patient data in --reason: name the proceedings, and their reference in --reference.")
            @OptionGroup var options: GlobalOptions
            @Option(help: "A patient's id.") var patient: String?
            @Option(help: "An episode's id.") var episode: String?
            @Option(help: "The first day (UTC) of a journal period, YYYY-MM-DD.") var journalFrom: String?
            @Option(help: "The last day (UTC) of a journal period, YYYY-MM-DD.") var journalThrough: String?
            @Option(help: "Why (10 to 500 characters).") var reason: String
            @Option(help: "The proceedings' reference (court docket, ticket).") var reference: String

            func subject() throws -> LegalHold.Subject {
                switch (patient, episode, journalFrom, journalThrough) {
                case (let patient?, nil, nil, nil):
                    guard let id = UUID(uuidString: patient) else { throw ValidationError("--patient must be a patient's id (a UUID)") }
                    return .patient(id)
                case (nil, let episode?, nil, nil):
                    guard let id = UUID(uuidString: episode) else { throw ValidationError("--episode must be an episode's id (a UUID)") }
                    return .episode(id)
                case (nil, nil, let from?, let through?):
                    return .journalPeriod(from: try CivilDate(parsing: from), through: try CivilDate(parsing: through))
                default:
                    throw ValidationError("name one subject: --patient ID, --episode ID, or --journal-from DAY --journal-through DAY")
                }
            }

            func run() async throws {
                try await reportingFailures {
                    let subject = try subject()
                    let hold = try await options.withConnection { connection in
                        try await connection.transaction { [reason, reference] in
                            try LegalHolds.place(subject, reason: reason, reference: reference, by: operatorActor(.dpo), on: $0)
                        }
                    }
                    print("legal hold \(hold.id) placed on \(hold.subject.label) (\(hold.reference))")
                }
            }
        }

        struct Release: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Release a hold (journaled); what it kept becomes due again if past its term.")
            @OptionGroup var options: GlobalOptions
            @Argument(help: "The hold's id.") var hold: Int64
            @Option(help: "Why it is released (10 to 500 characters).") var reason: String

            func run() async throws {
                try await reportingFailures {
                    let released = try await options.withConnection { connection in
                        try await connection.transaction { [hold, reason] in try LegalHolds.release(hold, reason: reason, by: operatorActor(.dpo), on: $0) }
                    }
                    print("legal hold \(released.id) on \(released.subject.label) released")
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "The holds in force (--all: released ones too).")
            @OptionGroup var options: GlobalOptions
            @Flag(help: "Released holds too.") var all = false
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                try await reportingFailures {
                    let holds = try await options.withConnection { connection in try await connection.perform { [all] in try LegalHolds.list(all: all, on: $0) } }
                    if json { return try printJSON(holds) }
                    printTable(
                        ["HOLD", "ON", "REFERENCE", "PLACED", "BY", "RELEASED", "REASON"],
                        holds.map { hold in
                            [
                                "\(hold.id)", hold.subject.label, hold.reference, isoTimestamp(hold.placedAt), hold.placedBy,
                                hold.releasedAt.map(isoTimestamp) ?? "in force", hold.reason,
                            ]
                        })
                }
            }
        }
    }

    struct Certificates: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Disposition certificates of finished runs, kept after the data is gone.",
            discussion: "Each certificate's SHA-256 is also in the access journal (retention-admin, retention-certificate).")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print JSON.") var json = false

        struct Line: Encodable {
            let run: Int64
            let plan: Int64
            let issuedAt: Date
            let sha256: String
            let approver: String
            let totals: [DispositionCertificate.Total]
        }

        func run() async throws {
            try await reportingFailures {
                let records = try await options.withConnection { connection in try await connection.perform { try Retention.Certificates.list(on: $0) } }
                if json {
                    return try printJSON(
                        records.map {
                            Line(run: $0.run, plan: $0.plan, issuedAt: $0.issuedAt, sha256: $0.sha256, approver: $0.certificate.approval.approver, totals: $0.certificate.totals)
                        })
                }
                printTable(
                    ["RUN", "PLAN", "ISSUED", "APPROVED BY", "DONE", "SKIPPED", "SHA-256"],
                    records.map { record in
                        let totals = record.certificate.totals
                        return [
                            "\(record.run)", "\(record.plan)", isoTimestamp(record.issuedAt), record.certificate.approval.approver,
                            "\(totals.map(\.done).reduce(0, +))", "\(totals.map(\.skipped).reduce(0, +))", record.sha256,
                        ]
                    })
            }
        }
    }

    struct Certificate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a run's disposition certificate (its canonical JSON, whose SHA-256 was journaled).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The run's id.") var run: Int64

        func run() async throws {
            try await reportingFailures {
                let record = try await options.withConnection { connection in
                    try await connection.perform { [run] in try Retention.Certificates.certificate(run: run, on: $0) }
                }
                try printJSON(record.certificate)
                FileHandle.standardError.write(Data("certificate of run \(record.run): sha256 \(record.sha256)\n".utf8))
            }
        }
    }

    struct DateOfDeathCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "date-of-death",
            abstract: "The DPO records (or clears) a patient's date of death, an input of the R1112-7 clock (journaled).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The patient's id.") var patient: String
        @Option(help: "The date of death, YYYY-MM-DD.") var date: String?
        @Flag(help: "Clear a date recorded in error.") var clear = false
        @Option(help: "The master key file (else retention.master_key_file).") var masterKey: String?

        func validate() throws {
            guard clear != (date != nil) else { throw ValidationError("give either --date YYYY-MM-DD or --clear") }
            guard UUID(uuidString: patient) != nil else { throw ValidationError("the patient must be given by its id (a UUID)") }
        }

        func run() async throws {
            try await reportingFailures {
                let context = try Context(options)
                let master = try context.master(masterKey)
                let id = UUID(uuidString: patient)!
                let view = try await options.withConnection { connection in
                    let ring = try await DataKeyRing.load(on: connection, master: master)
                    return try await connection.transaction { [date] in
                        try Retention.DateOfDeath.record(patient: id, date: date, ring: ring, by: operatorActor(.dpo), on: $0)
                    }
                }
                print("patient \(patient): date of death \(view.dateOfDeath ?? "cleared") (version \(view.version))")
            }
        }
    }
}

extension RetentionCommand {
    struct Compact: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rewrite the care tables after a pseudonymisation run so that removed values leave the data files too (locks each table while it is rewritten).",
            discussion: """
                Runs VACUUM (FULL, ANALYZE) on every table of the registry of encrypted columns, then VACUUM FULL on \
                pg_statistic (a superuser only) and a CHECKPOINT. The care service waits while a table is rewritten: \
                run it in a quiet hour. Needs the tables' owner. Journaled.
                """)
        @OptionGroup var options: GlobalOptions
        @Flag(help: "List the tables and their sizes; change nothing.") var dryRun = false

        func run() async throws {
            try await reportingFailures {
                let report = try await options.withConnection { connection in
                    let report = try await CareCompaction.compact(dryRun: dryRun, on: connection)
                    if !dryRun {
                        try await connection.transaction {
                            try $0.record(
                                AccessEvent.system(
                                    by: operatorActor(.sysadmin), action: .retentionAdmin, objectType: "care-tables", objectID: "compact",
                                    reason: "care tables rewritten after pseudonymisation\(report.statisticsRewritten ? ", statistics too" : "")"))
                        }
                    }
                    return report
                }
                printTable(
                    ["TABLE", "BYTES BEFORE", dryRun ? "" : "BYTES AFTER"],
                    report.tables.map { [$0.name, "\($0.bytesBefore)", report.bytesAfter?[$0.name].map(String.init) ?? ""] })
                if dryRun {
                    print("dry run: nothing was rewritten")
                } else if !report.statisticsRewritten {
                    print("pg_statistic was not rewritten (only a superuser may): old sampled values stay until it is (VACUUM FULL pg_catalog.pg_statistic)")
                }
            }
        }
    }
}

/// A stored plan as `--json` prints it.
struct PlanJSON: Encodable {
    let id: Int64
    let sha256: String
    let state: String
    let computedBy: String
    let approval: PlanApproval?
    let plan: RetentionPlan

    init(_ stored: StoredPlan) {
        id = stored.id
        sha256 = stored.sha256
        state = stored.state
        computedBy = stored.computedBy
        approval = stored.approval
        plan = stored.plan
    }
}

/// Prints a plan for the DPO to review.
func printPlan(_ stored: StoredPlan) {
    let plan = stored.plan
    print("plan \(stored.id) (\(plan.kind.rawValue), as of \(plan.asOf)): \(stored.state)")
    print("sha256 \(stored.sha256)")
    print("computed \(plan.computedAt) by \(stored.computedBy), under retention.yaml sha256 \(plan.policySHA256)")
    func rows(_ items: [PlanItem]) -> [[String]] {
        items.filter { $0.dataClass != .sessions }.map { item in
            let basis = item.basis.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            return [item.dataClass.rawValue, item.action.rawValue, item.key, item.dueOn.description, item.heldBy.map { $0.map(String.init).joined(separator: ",") } ?? "",
                "\(item.rule)\(basis.isEmpty ? "" : " [\(basis)]")"]
        }
    }
    let counts = plan.counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    print("due: \(plan.items.isEmpty ? "nothing" : counts)")
    let listed = rows(plan.items)
    if !listed.isEmpty { printTable(["CLASS", "ACTION", "ITEM", "DUE", "HELD BY", "RULE [BASIS]"], listed) }
    let ended = plan.items.filter { $0.dataClass == .sessions }.compactMap { $0.basis["ended"] }.sorted()
    if let first = ended.first, let last = ended.last {
        print("sessions: \(ended.count) ended sessions to remove (ended \(first) to \(last)); --json lists each")
    }
    if !plan.held.isEmpty {
        print("kept by legal holds (never applied while the hold is in force):")
        printTable(["CLASS", "ACTION", "ITEM", "DUE", "HELD BY", "RULE [BASIS]"], rows(plan.held))
    }
    if plan.kind == .reviewed && stored.approval == nil && stored.run == nil {
        print("to approve: osmosectl retention approve \(stored.id) --sha256 \(stored.sha256) --approver \"First Last\"")
    }
}
