import Foundation
import Hummingbird
import Journal
import Keyring
import Retention
import StaffAccounts
import Store

/// The DPO's retention pages, over the `Retention` library as `osmosectl retention`
/// uses it: the plans (computed for today, each item with its rule, the dates that
/// make it due and the holds that keep it), their approval by the plan's SHA-256,
/// legal holds (placed and released), and the disposition certificates.
extension Console {
    func addRetentionRoutes(to router: Router<ConsoleRequestContext>) {
        let console = self
        let dpo = Self.dpoOnly
        router.get("/dpo/conservation") { request, context in
            await console.serve(request, context, .read, "console-retention-plans", audience: dpo) { checked in
                try await console.retentionAction(checked) { try await console.plans(checked) }
            }
        }
        router.post("/dpo/conservation/plans") { request, context in
            await console.serve(request, context, .retentionAdmin, "retention-plan", audience: dpo) { checked in
                try await console.retentionAction(checked) { try await console.computePlan(checked) }
            }
        }
        router.get("/dpo/conservation/plans/{plan}") { request, context in
            let plan = context.parameters.get("plan")
            return await console.serve(request, context, .read, "retention-plan", audience: dpo) { checked in
                try await console.retentionAction(checked) { try await console.plan(checked, id: try Self.number(plan)) }
            }
        }
        router.post("/dpo/conservation/plans/{plan}/approbation") { request, context in
            let plan = context.parameters.get("plan")
            return await console.serve(request, context, .retentionAdmin, "retention-plan", audience: dpo) { checked in
                try await console.retentionAction(checked) { try await console.approvePlan(checked, id: try Self.number(plan)) }
            }
        }
        router.get("/dpo/conservation/gels") { request, context in
            await console.serve(request, context, .read, "console-legal-holds", audience: dpo) { checked in
                try await console.retentionAction(checked) { try await console.holds(checked) }
            }
        }
        router.post("/dpo/conservation/gels") { request, context in
            await console.serve(request, context, .retentionAdmin, "legal-hold", audience: dpo) { checked in
                try await console.retentionAction(checked) { try await console.placeHold(checked) }
            }
        }
        router.post("/dpo/conservation/gels/{hold}/levee") { request, context in
            let hold = context.parameters.get("hold")
            return await console.serve(request, context, .retentionAdmin, "legal-hold", audience: dpo) { checked in
                try await console.retentionAction(checked) { try await console.releaseHold(checked, id: try Self.number(hold)) }
            }
        }
        router.get("/dpo/conservation/certificats") { request, context in
            await console.serve(request, context, .read, "console-retention-certificates", audience: dpo) { checked in
                try await console.retentionAction(checked) { try await console.certificates(checked) }
            }
        }
        router.get("/dpo/conservation/certificats/{run}") { request, context in
            let run = context.parameters.get("run")
            return await console.serve(request, context, .read, "retention-certificate", audience: dpo) { checked in
                try await console.retentionAction(checked) { try await console.certificate(checked, run: try Self.number(run), download: false) }
            }
        }
        router.get("/dpo/conservation/certificats/{run}/json") { request, context in
            let run = context.parameters.get("run")
            return await console.serve(request, context, .export, "retention-certificate", audience: dpo) { checked in
                try await console.retentionAction(checked) { try await console.certificate(checked, run: try Self.number(run), download: true) }
            }
        }
    }

    /// Runs a retention page, turning the library's refusals into pages that name their code.
    func retentionAction(_ checked: Checked, _ body: () async throws -> ConsoleView) async throws -> ConsoleView {
        do {
            return try await body()
        } catch let error as RetentionError {
            let status: HTTPResponse.Status =
                switch error.code {
                case .notFound: .notFound
                case .invalidArgument: .badRequest
                default: .conflict
                }
            throw refusal(code: error.code.rawValue, status: status)
        }
    }

    // MARK: Plans

    struct PlanRow: Sendable {
        let id: String
        let kind: String
        let asOf: String
        let items: String
        let held: String
        let state: String
        let approvedBy: String
        let sha256: String
        let awaiting: Bool
    }

    struct PlansModel: Sendable {
        let plans: [PlanRow]
        let empty: Bool
        let today: String
        let canCompute: Bool
    }

    func plans(_ checked: Checked) async throws -> ConsoleView {
        let stored = try await pool.withConnection { connection in try await connection.perform { try PlanStore.recent(on: $0) } }
        let rows = stored.map { plan in
            PlanRow(
                id: "\(plan.id)", kind: renderer.text("plan_kind_" + plan.plan.kind.rawValue), asOf: Self.frenchDay(plan.plan.asOf.description),
                items: "\(plan.plan.items.count)", held: "\(plan.plan.held.count)", state: renderer.strings["plan_state_" + plan.state] ?? plan.state,
                approvedBy: plan.approval?.approverName ?? "—", sha256: plan.sha256, awaiting: plan.state == "awaiting approval")
        }
        return .page(
            "dpo-plans", title: "plans_title",
            PlansModel(plans: rows, empty: rows.isEmpty, today: ParisTime.day(Date()), canCompute: masterKey != nil))
    }

    /// Computes the plan for today and stores it, as `osmosectl retention plan` does
    /// (the care records' dates are encrypted: it needs the keyring).
    func computePlan(_ checked: Checked) async throws -> ConsoleView {
        let loaded: LoadedRetentionPolicy
        do {
            loaded = try LoadedRetentionPolicy.load(configuration)
        } catch {
            throw refusal(code: "retention.policy_invalid", status: .conflict)
        }
        let ring = try await keyring()
        let zone = TimeZone(identifier: loaded.policy.careRecords.timeZone) ?? ParisTime.zone
        // The same plan as `osmosectl retention plan`: journal months and cold archives included.
        let journal = try JournalMonthArchives(
            directories: configuration.archives.directories, recipients: configuration.archives.recipients,
            verifierKeys: configuration.journal.verifierKeys, logger: logger)
        let builder = PlanBuilder(policy: loaded.policy, policySHA256: loaded.sha256, ring: ring, journal: journal)
        let actor = dpoActor(checked)
        let stored = try await pool.withConnection { connection in
            let plan = try await builder.plan(kind: .reviewed, asOf: CivilDate(Date(), in: zone), on: connection)
            return try await connection.transaction { connection in
                let stored = try PlanStore.save(plan, computedBy: actor.name, on: connection)
                checked.audit.touched(object: "\(stored.id)")
                checked.audit.acted(.create)
                checked.audit.note("plan \(stored.id) computed: sha256 \(stored.sha256), \(stored.plan.items.count) items")
                try checked.audit.recordSuccess(on: connection)
                return stored
            }
        }
        return .redirect("/dpo/conservation/plans/\(stored.id)")
    }

    struct ItemRow: Sendable {
        let dataClass: String
        let action: String
        let target: String
        let key: String
        let rule: String
        let basis: String
        let due: String
        let heldBy: String
    }

    struct CountRow: Sendable {
        let what: String
        let count: String
    }

    struct PlanModel: Sendable {
        let id: String
        let kind: String
        let asOf: String
        let state: String
        let sha256: String
        let computed: String
        let computedBy: String
        let policySHA256: String
        let counts: [CountRow]
        let items: [ItemRow]
        let held: [ItemRow]
        let noItems: Bool
        let hasHeld: Bool
        let approvable: Bool
        let approval: String
        let approved: Bool
    }

    func plan(_ checked: Checked, id: Int64) async throws -> ConsoleView {
        let stored = try await pool.withConnection { connection in try await connection.perform { try PlanStore.load(id, on: $0) } }
        checked.audit.touched(object: "\(id)")
        let plan = stored.plan
        func row(_ item: PlanItem) -> ItemRow {
            ItemRow(
                dataClass: renderer.strings["class_" + item.dataClass.rawValue] ?? item.dataClass.rawValue,
                action: renderer.strings["action_" + item.action.rawValue] ?? item.action.rawValue, target: item.target, key: item.key, rule: item.rule,
                basis: item.basis.sorted { $0.key < $1.key }.map { "\(renderer.strings["basis_" + $0.key] ?? $0.key) \(Self.frenchDay($0.value.description))" }
                    .joined(separator: ", "),
                due: Self.frenchDay(item.dueOn.description), heldBy: item.heldBy.map { $0.map { "#\($0)" }.joined(separator: ", ") } ?? "")
        }
        let approval = stored.approval.map { "\($0.approverName) — \(ParisTime.format($0.approvedAt)) (\($0.approvedBy))" } ?? ""
        let model = PlanModel(
            id: "\(stored.id)", kind: renderer.text("plan_kind_" + plan.kind.rawValue), asOf: Self.frenchDay(plan.asOf.description),
            state: renderer.strings["plan_state_" + stored.state] ?? stored.state, sha256: stored.sha256, computed: Self.frenchMoment(plan.computedAt),
            computedBy: stored.computedBy, policySHA256: plan.policySHA256,
            counts: plan.counts.sorted { $0.key < $1.key }.map { CountRow(what: $0.key, count: "\($0.value)") }, items: plan.items.map(row),
            held: plan.held.map(row), noItems: plan.items.isEmpty, hasHeld: !plan.held.isEmpty,
            approvable: plan.kind == .reviewed && stored.approval == nil && stored.run == nil, approval: approval, approved: stored.approval != nil)
        return .page("dpo-plan", title: "plan_title", model)
    }

    /// Approves the digest the page showed (sent back by the form), with the DPO's
    /// name, as `osmosectl retention approve PLAN --sha256 … --approver …`: a digest
    /// that is not the plan's, a plan changed since it was stored, a preview, a plan
    /// already approved or too old are refused and nothing is recorded.
    func approvePlan(_ checked: Checked, id: Int64) async throws -> ConsoleView {
        guard let digest = checked.form.text("sha256") else { throw ConsolePageError.invalidInput("plan_bad_digest") }
        guard let approver = checked.form.text("approver") else { throw ConsolePageError.invalidInput("plan_bad_approver") }
        let actor = dpoActor(checked)
        try await pool.transaction { connection in
            let approval = try PlanStore.approve(id, sha256: digest, approverName: approver, by: actor, on: connection)
            checked.audit.touched(object: "\(id)")
            checked.audit.acted(.retentionAdmin)
            checked.audit.note("plan \(id) approved: sha256 \(approval.sha256)")
            try checked.audit.recordSuccess(on: connection)
        }
        return .redirect("/dpo/conservation/plans/\(id)")
    }

    // MARK: Legal holds

    struct HoldRow: Sendable {
        let id: String
        let subject: String
        let reason: String
        let reference: String
        let placed: String
        let released: String
        let inForce: Bool
    }

    struct HoldsModel: Sendable {
        let holds: [HoldRow]
        let empty: Bool
        let inForce: String
    }

    func holds(_ checked: Checked) async throws -> ConsoleView {
        let holds = try await pool.withConnection { connection in try await connection.perform { try LegalHolds.list(all: true, on: $0) } }
        let rows = holds.reversed().map { hold in
            HoldRow(
                id: "\(hold.id)", subject: subjectText(hold.subject), reason: hold.reason, reference: hold.reference,
                placed: "\(ParisTime.format(hold.placedAt)) — \(hold.placedBy)",
                released: hold.releasedAt.map { "\(ParisTime.format($0)) — \(hold.releasedBy ?? "") : \(hold.releaseReason ?? "")" } ?? "",
                inForce: hold.inForce)
        }
        return .page("dpo-holds", title: "holds_title", HoldsModel(holds: rows, empty: rows.isEmpty, inForce: "\(holds.filter(\.inForce).count)"))
    }

    func subjectText(_ subject: LegalHold.Subject) -> String {
        switch subject {
        case .patient(let id): "\(renderer.text("hold_patient")) \(id.uuidString.lowercased())"
        case .episode(let id): "\(renderer.text("hold_episode")) \(id.uuidString.lowercased())"
        case .journalPeriod(let from, let through):
            "\(renderer.text("hold_journal")) \(Self.frenchDay(from.description)) → \(Self.frenchDay(through.description))"
        }
    }

    func placeHold(_ checked: Checked) async throws -> ConsoleView {
        let form = checked.form
        let subject: LegalHold.Subject
        switch form.text("scope") {
        case "patient":
            guard let id = form.text("patient").flatMap(UUID.init(uuidString:)) else { throw ConsolePageError.invalidInput("hold_bad_patient") }
            subject = .patient(id)
        case "episode":
            guard let id = form.text("episode").flatMap(UUID.init(uuidString:)) else { throw ConsolePageError.invalidInput("hold_bad_episode") }
            subject = .episode(id)
        case "journal-period":
            guard let from = form.text("from").flatMap({ try? CivilDate(parsing: $0) }), let through = form.text("through").flatMap({ try? CivilDate(parsing: $0) })
            else { throw ConsolePageError.invalidInput("hold_bad_period") }
            subject = .journalPeriod(from: from, through: through)
        default:
            throw ConsolePageError.invalidInput("hold_bad_scope")
        }
        let reason = form.text("reason") ?? ""
        let reference = form.text("reference") ?? ""
        let actor = dpoActor(checked)
        try await pool.transaction { connection in
            let hold = try LegalHolds.place(subject, reason: reason, reference: reference, by: actor, on: connection)
            if case .patient(let id) = subject { checked.audit.touched(patient: id, purpose: .administration) }
            checked.audit.touched(object: "\(hold.id)")
            checked.audit.acted(.retentionAdmin)
            try checked.audit.recordSuccess(on: connection)
        }
        return .redirect("/dpo/conservation/gels")
    }

    func releaseHold(_ checked: Checked, id: Int64) async throws -> ConsoleView {
        let reason = checked.form.text("reason") ?? ""
        let actor = dpoActor(checked)
        try await pool.transaction { connection in
            let hold = try LegalHolds.release(id, reason: reason, by: actor, on: connection)
            if case .patient(let patient) = hold.subject { checked.audit.touched(patient: patient, purpose: .administration) }
            checked.audit.touched(object: "\(id)")
            checked.audit.acted(.retentionAdmin)
            try checked.audit.recordSuccess(on: connection)
        }
        return .redirect("/dpo/conservation/gels")
    }

    // MARK: Certificates

    struct CertificateRow: Sendable {
        let run: String
        let plan: String
        let issued: String
        let approver: String
        let done: String
        let skipped: String
        let sha256: String
    }

    struct CertificatesModel: Sendable {
        let certificates: [CertificateRow]
        let empty: Bool
    }

    func certificates(_ checked: Checked) async throws -> ConsoleView {
        let records = try await pool.withConnection { connection in try await connection.perform { try Certificates.list(on: $0) } }
        let rows = records.map { record in
            CertificateRow(
                run: "\(record.run)", plan: "\(record.plan)", issued: ParisTime.format(record.issuedAt), approver: record.certificate.approval.approver,
                done: "\(record.certificate.totals.map(\.done).reduce(0, +))", skipped: "\(record.certificate.totals.map(\.skipped).reduce(0, +))",
                sha256: record.sha256)
        }
        return .page("dpo-certificates", title: "certificates_title", CertificatesModel(certificates: rows, empty: rows.isEmpty))
    }

    struct TotalRow: Sendable {
        let dataClass: String
        let action: String
        let rule: String
        let done: String
        let skipped: String
        let values: String
    }

    struct EntryRow: Sendable {
        let key: String
        let action: String
        let due: String
        let outcome: String
        let detail: String
        let values: String
    }

    struct CertificateModel: Sendable {
        let run: String
        let plan: String
        let planSHA256: String
        let sha256: String
        let approver: String
        let approvedAt: String
        let appliedBy: String
        let started: String
        let finished: String
        let totals: [TotalRow]
        let entries: [EntryRow]
    }

    func certificate(_ checked: Checked, run: Int64, download: Bool) async throws -> ConsoleView {
        let record = try await pool.withConnection { connection in try await connection.perform { try Certificates.certificate(run: run, on: $0) } }
        checked.audit.touched(object: "\(run)")
        let certificate = record.certificate
        if download {
            return ConsoleView(
                body: .download(
                    filename: "osmose-certificat-\(run).json", contentType: "application/json", bytes: Array(try certificate.canonicalText().utf8)))
        }
        let model = CertificateModel(
            run: "\(run)", plan: "\(certificate.plan.id)", planSHA256: certificate.plan.sha256, sha256: record.sha256, approver: certificate.approval.approver,
            approvedAt: certificate.approval.approvedAt.map(Self.frenchMoment) ?? "—", appliedBy: certificate.appliedBy,
            started: Self.frenchMoment(certificate.startedAt), finished: Self.frenchMoment(certificate.finishedAt),
            totals: certificate.totals.map { total in
                TotalRow(
                    dataClass: renderer.strings["class_" + total.dataClass.rawValue] ?? total.dataClass.rawValue,
                    action: renderer.strings["action_" + total.action] ?? total.action, rule: total.rule, done: "\(total.done)", skipped: "\(total.skipped)",
                    values: "\(total.valuesRemoved)")
            },
            entries: certificate.items.map { entry in
                EntryRow(
                    key: entry.key, action: renderer.strings["action_" + entry.action] ?? entry.action, due: Self.frenchDay(entry.dueOn.description),
                    outcome: entry.outcome.rawValue, detail: entry.detail, values: "\(entry.valuesRemoved)")
            })
        return .page("dpo-certificate", title: "certificate_title", model)
    }
}
