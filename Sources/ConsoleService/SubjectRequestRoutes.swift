import Cryptography
import Foundation
import Hummingbird
import Journal
import Keyring
import StaffAccounts
import Store
import SubjectRequests

/// The DPO's subject-request pages, over the `SubjectRequests` library as
/// `osmosectl dsar` uses it: the register with its deadlines and filters, opening a
/// request, a request's file (facts, deadlines and the rule that set each, identity
/// check, notes, the timeline of its evidence steps, closing), the access pack
/// (preview, redactions, approval, sealed release) and the rectification recipients.
extension Console {
    func addSubjectRequestRoutes(to router: Router<ConsoleRequestContext>) {
        let console = self
        let dpo = Self.dpoOnly
        router.get("/dpo/demandes") { request, context in
            await console.serve(request, context, .read, "console-subject-requests", audience: dpo) { checked in try await console.register(checked, request) }
        }
        router.get("/dpo/demandes/nouvelle") { request, context in
            await console.serve(request, context, .read, "console-subject-request-form", audience: dpo) { _ in console.newRequestForm() }
        }
        router.post("/dpo/demandes/nouvelle") { request, context in
            await console.serve(request, context, .subjectRequest, "subject-request", audience: dpo) { checked in
                try await console.requestAction(checked) { try await console.openRequest(checked) }
            }
        }
        router.get("/dpo/demandes/{number}") { request, context in
            let number = context.parameters.get("number")
            return await console.serve(request, context, .read, "subject-request", audience: dpo) { checked in
                try await console.requestAction(checked) { try await console.requestFile(checked, number: try Self.number(number)) }
            }
        }
        router.post("/dpo/demandes/{number}/identite") { request, context in
            let number = context.parameters.get("number")
            return await console.serve(request, context, .subjectRequest, "subject-request", audience: dpo) { checked in
                try await console.requestAction(checked) { try await console.checkIdentity(checked, number: try Self.number(number)) }
            }
        }
        router.post("/dpo/demandes/{number}/notes") { request, context in
            let number = context.parameters.get("number")
            return await console.serve(request, context, .subjectRequest, "subject-request", audience: dpo) { checked in
                try await console.requestAction(checked) { try await console.addNote(checked, number: try Self.number(number)) }
            }
        }
        router.post("/dpo/demandes/{number}/cloture") { request, context in
            let number = context.parameters.get("number")
            return await console.serve(request, context, .subjectRequest, "subject-request", audience: dpo) { checked in
                try await console.requestAction(checked) { try await console.closeRequest(checked, number: try Self.number(number)) }
            }
        }
        router.get("/dpo/demandes/{number}/dossier") { request, context in
            let number = context.parameters.get("number")
            return await console.serve(request, context, .read, "subject-request-pack", audience: dpo) { checked in
                try await console.requestAction(checked) { try await console.packPreview(checked, number: try Self.number(number), request) }
            }
        }
        router.post("/dpo/demandes/{number}/dossier/occultations") { request, context in
            let number = context.parameters.get("number")
            return await console.serve(request, context, .subjectRequest, "subject-request-pack", audience: dpo) { checked in
                try await console.requestAction(checked) { try await console.redact(checked, number: try Self.number(number)) }
            }
        }
        router.post("/dpo/demandes/{number}/dossier/occultations/{redaction}/retrait") { request, context in
            let number = context.parameters.get("number")
            let redaction = context.parameters.get("redaction")
            return await console.serve(request, context, .subjectRequest, "subject-request-pack", audience: dpo) { checked in
                try await console.requestAction(checked) { try await console.withdrawRedaction(checked, number: try Self.number(number), redaction: redaction) }
            }
        }
        router.post("/dpo/demandes/{number}/dossier/approbation") { request, context in
            let number = context.parameters.get("number")
            return await console.serve(request, context, .subjectRequest, "subject-request-pack", audience: dpo) { checked in
                try await console.requestAction(checked) { try await console.approvePack(checked, number: try Self.number(number)) }
            }
        }
        router.post("/dpo/demandes/{number}/dossier/remise") { request, context in
            let number = context.parameters.get("number")
            return await console.serve(request, context, .export, "subject-request-pack", audience: dpo) { checked in
                try await console.requestAction(checked) { try await console.releasePack(checked, number: try Self.number(number)) }
            }
        }
        router.get("/dpo/demandes/{number}/destinataires") { request, context in
            let number = context.parameters.get("number")
            return await console.serve(request, context, .read, "subject-request-recipients", audience: dpo) { checked in
                try await console.requestAction(checked) { try await console.recipients(checked, number: try Self.number(number)) }
            }
        }
    }

    /// Runs a page of the register, turning the library's refusals into pages that name their code.
    func requestAction(_ checked: Checked, _ body: () async throws -> ConsoleView) async throws -> ConsoleView {
        checked.audit.serves(.subjectRequest)
        do {
            return try await body()
        } catch let error as SubjectRequestError {
            let status: HTTPResponse.Status =
                switch error.code {
                case .unknownRequest: .notFound
                case .masterKeyRequired: .serviceUnavailable
                case .invalidArgument, .invalidDate: .badRequest
                default: .conflict
                }
            throw refusal(code: error.code.rawValue, status: status)
        }
    }

    func register(for checked: Checked, ring: DataKeyRing?) -> RequestRegister {
        RequestRegister(actor: dpoActor(checked), timeZone: ParisTime.zone(named: configuration.subjectRequests.timeZone), ring: ring)
    }

    // MARK: The register

    struct RegisterRow: Sendable {
        let number: String
        let kind: String
        let capacity: String
        let received: String
        let status: String
        let due: String
        let left: String
        let overdue: Bool
        let soon: Bool
        let identityChecked: Bool
    }

    struct PageLink: Sendable {
        let href: String
        let label: String
        let rel: String
    }

    struct RegisterModel: Sendable {
        let statuses: [Choice]
        let kinds: [Choice]
        let within: String
        let rows: [RegisterRow]
        let count: String
        let overdue: String
        let soon: String
        let warnDays: String
        /// Links to the first and previous pages, then the next and last ones, keeping the filters.
        let before: [PageLink]
        let after: [PageLink]
        let position: String
        let paged: Bool
        let empty: Bool
    }

    /// Rows shown per page of the register.
    static let registerPageSize = 50

    func register(_ checked: Checked, _ request: Request) async throws -> ConsoleView {
        let query = request.uri.queryParameters
        let status = query.get("statut").flatMap { $0.isEmpty ? nil : $0 } ?? "ouvertes"
        guard ["ouvertes", "closes", "toutes"].contains(status) else { throw ConsolePageError.invalidInput("register_bad_filter") }
        var kind: RequestKind?
        if let text = query.get("type"), !text.isEmpty {
            guard let value = RequestKind(rawValue: text) else { throw ConsolePageError.invalidInput("register_bad_filter") }
            kind = value
        }
        var within: Int?
        if let text = query.get("echeance"), !text.isEmpty {
            guard let days = Int(text), (0...3650).contains(days) else { throw ConsolePageError.invalidInput("register_bad_within") }
            within = days
        }
        var asked = 1
        if let text = query.get("page"), !text.isEmpty {
            guard let number = Int(text), (1...1_000_000).contains(number) else { throw ConsolePageError.invalidInput("register_bad_page") }
            asked = number
        }
        let filter = RequestRegister.RegisterFilter(
            status: status == "ouvertes" ? .open : status == "closes" ? .closed : .all, kind: kind, dueWithin: within)
        let register = register(for: checked, ring: nil)
        let warn = configuration.subjectRequests.warnDays
        let size = Self.registerPageSize
        let offset = (asked - 1) * size
        let found = try await pool.withConnection { connection in
            try await connection.perform { connection -> RequestRegister.RegisterPage in
                let found = try register.page(filter, offset: offset, limit: size, warnDays: warn, on: connection)
                // A page past the end (requests closed since the link was made): the last page.
                guard found.rows.isEmpty, found.total > 0 else { return found }
                return try register.page(filter, offset: (found.total - 1) / size * size, limit: size, warnDays: warn, on: connection)
            }
        }
        let pageCount = max(1, (found.total + size - 1) / size)
        let current = found.offset / size + 1
        let rows = found.rows.map { summary in
            RegisterRow(
                number: "\(summary.number)", kind: renderer.text("kind_" + summary.kind.rawValue), capacity: renderer.text("capacity_" + summary.capacity.rawValue),
                received: Self.frenchDay(summary.receivedOn.description),
                status: (summary.outcome.map { renderer.text("outcome_" + $0.rawValue) } ?? renderer.text("status_" + summary.status))
                    + (summary.disposed ? " — \(renderer.text("status_disposed"))" : ""),
                due: summary.dueOn.map { Self.frenchDay($0.description) } ?? "—", left: summary.daysLeft.map { daysLeftText($0) } ?? "—",
                overdue: (summary.daysLeft ?? 0) < 0, soon: (summary.daysLeft ?? -1) >= 0 && (summary.daysLeft ?? Int.max) <= warn,
                identityChecked: summary.identityChecked)
        }
        var parameters = "statut=\(status)"
        if let kind { parameters += "&type=\(kind.rawValue)" }
        if let within { parameters += "&echeance=\(within)" }
        func link(_ page: Int, _ label: String, _ rel: String) -> PageLink {
            PageLink(href: "/dpo/demandes?\(parameters)&page=\(page)", label: renderer.text(label), rel: rel)
        }
        let before = current > 1 ? [link(1, "register_first_page", "first"), link(current - 1, "register_previous_page", "prev")] : []
        let after = current < pageCount ? [link(current + 1, "register_next_page", "next"), link(pageCount, "register_last_page", "last")] : []
        checked.audit.note("\(found.total) requests, page \(current) of \(pageCount)")
        let model = RegisterModel(
            statuses: ["ouvertes", "closes", "toutes"].map { Choice(value: $0, label: renderer.text("register_status_" + $0), selected: $0 == status) },
            kinds: [Choice(value: "", label: renderer.text("register_any_kind"), selected: kind == nil)]
                + RequestKind.allCases.map { Choice(value: $0.rawValue, label: renderer.text("kind_" + $0.rawValue), selected: $0 == kind) },
            within: within.map(String.init) ?? "", rows: rows, count: Self.grouped(UInt64(found.total)), overdue: Self.grouped(UInt64(found.overdue)),
            soon: Self.grouped(UInt64(found.dueSoon)), warnDays: "\(warn)", before: before, after: after,
            position: "\(renderer.text("register_page")) \(current) \(renderer.text("register_page_of")) \(pageCount) — "
                + "\(renderer.text("register_rows")) \(found.offset + 1) \(renderer.text("register_rows_to")) \(found.offset + found.rows.count)",
            paged: pageCount > 1, empty: found.rows.isEmpty)
        return .page("dpo-register", title: "register_title", model)
    }

    func daysLeftText(_ days: Int) -> String {
        if days < 0 { return "\(renderer.text("register_late_by")) \(-days) \(renderer.text("unit_days"))" }
        if days == 0 { return renderer.text("register_due_today") }
        return "\(days) \(renderer.text("unit_days"))"
    }

    /// `2026-12-04` as `04/12/2026`.
    static func frenchDay(_ text: String) -> String {
        let parts = text.split(separator: "-")
        guard parts.count == 3 else { return text }
        return "\(parts[2])/\(parts[1])/\(parts[0])"
    }

    // MARK: Opening a request

    struct RequestFormModel: Sendable {
        let kinds: [Choice]
        let capacities: [Choice]
        let representations: [Choice]
        let today: String
    }

    func newRequestForm() -> ConsoleView {
        let today = ParisTime.format(Date())
        let parts = today.prefix(10).split(separator: "/")
        return .page(
            "dpo-request-new", title: "request_new_title",
            RequestFormModel(
                kinds: RequestKind.allCases.map { Choice(value: $0.rawValue, label: renderer.text("kind_" + $0.rawValue), selected: $0 == .access) },
                capacities: RequesterCapacity.allCases.map { Choice(value: $0.rawValue, label: renderer.text("capacity_" + $0.rawValue), selected: $0 == .patient) },
                representations: [Choice(value: "", label: "—", selected: true)]
                    + Representation.allCases.map { Choice(value: $0.rawValue, label: renderer.text("representation_" + $0.rawValue), selected: false) },
                today: "\(parts[2])-\(parts[1])-\(parts[0])"))
    }

    func openRequest(_ checked: Checked) async throws -> ConsoleView {
        let form = checked.form
        guard let kind = form.text("kind").flatMap(RequestKind.init(rawValue:)),
            let capacity = form.text("capacity").flatMap(RequesterCapacity.init(rawValue:))
        else { throw ConsolePageError.invalidInput("request_bad_choice") }
        let representation = try form.text("representation").map { text -> Representation in
            guard let value = Representation(rawValue: text) else { throw ConsolePageError.invalidInput("request_bad_choice") }
            return value
        }
        let subject: SubjectIdentification
        switch form.text("subject_by") ?? "" {
        case "patient":
            guard let id = form.text("patient_id").flatMap(UUID.init(uuidString:)) else { throw ConsolePageError.invalidInput("request_bad_patient") }
            subject = .patientID(id)
        case "ins":
            guard let ins = form.text("ins") else { throw ConsolePageError.invalidInput("request_bad_ins") }
            subject = .patientINS(ins)
        case "name":
            guard let last = form.text("last_name"), let first = form.text("first_name"), let birth = form.text("birth_date") else {
                throw ConsolePageError.invalidInput("request_bad_name")
            }
            subject = .patientName(lastName: last, firstName: first, birthDate: birth)
        case "staff":
            guard let username = form.text("staff_username") else { throw ConsolePageError.invalidInput("request_bad_staff") }
            subject = .staff(username: username)
        default:
            throw ConsolePageError.invalidInput("request_bad_subject")
        }
        guard let receivedAt = ParisTime.moment(day: form.text("received_on") ?? "", time: form.text("received_time") ?? "") else {
            throw ConsolePageError.invalidInput("request_bad_received")
        }
        guard let requesterName = form.text("requester_name") else { throw ConsolePageError.invalidInput("request_bad_requester") }
        let chosen = try form.text("chosen_patient").map { text -> UUID in
            guard let id = UUID(uuidString: text) else { throw ConsolePageError.invalidInput("request_bad_patient") }
            return id
        }
        let health: Bool? =
            switch form.text("health") {
            case "oui": true
            case "non": false
            default: nil
            }
        let identity = form.text("identity_by").map { IdentityCheck(checkedBy: $0, checkedAt: Date(), documents: form.text("identity_documents")) }
        let new = NewRequest(
            kind: kind, subject: subject, chosenPatient: chosen, capacity: capacity, representation: representation, requesterName: requesterName,
            requesterContact: form.text("requester_contact"), receivedAt: receivedAt, healthInformation: health, identityCheck: identity,
            acknowledgeLate: form.text("acknowledge_late") == "oui")
        let register = register(for: checked, ring: try await keyring())
        let record = try await pool.transaction { connection in
            let record = try register.open(new, on: connection)
            checked.audit.touched(object: "\(record.number)", patient: record.patientID, purpose: .subjectRequest)
            checked.audit.acted(.create)
            try checked.audit.recordSuccess(on: connection)
            return record
        }
        return .redirect("/dpo/demandes/\(record.number)")
    }

    // MARK: A request's file

    struct Fact: Sendable {
        let label: String
        let value: String
    }

    struct DeadlineRow: Sendable {
        let rule: String
        let citation: String
        let when: String
        let inForce: Bool
    }

    struct NoteRow: Sendable {
        let kind: String
        let when: String
        let by: String
        let text: String
    }

    struct StepRow: Sendable {
        let position: String
        let when: String
        let actor: String
        let kind: String
        let details: [Fact]
    }

    struct RequestModel: Sendable {
        let number: String
        let open: Bool
        let facts: [Fact]
        let deadlines: [DeadlineRow]
        let identityChecked: Bool
        let identity: [Fact]
        let notes: [NoteRow]
        let steps: [StepRow]
        let hasPack: Bool
        let isRectification: Bool
        let outcomes: [Choice]
        let now: String
        let nowTime: String
    }

    func requestFile(_ checked: Checked, number: Int64) async throws -> ConsoleView {
        let register = register(for: checked, ring: try await keyring())
        let (record, notes, steps) = try await pool.withConnection { connection in
            try await connection.perform { connection in
                let record = try register.request(number: number, on: connection)
                return (record, try register.notes(number: number, on: connection), try EvidenceLog.steps(of: record.id, on: connection))
            }
        }
        checked.audit.touched(object: "\(number)", patient: record.patientID, purpose: .subjectRequest)
        return .page("dpo-request", title: "request_title", requestModel(record, notes: notes, steps: steps))
    }

    func requestModel(_ record: RequestRecord, notes: [RequestNote], steps: [EvidenceStep]) -> RequestModel {
        var facts: [Fact] = [
            Fact(label: renderer.text("request_kind"), value: "\(renderer.text("kind_" + record.kind.rawValue)) (\(record.kind.article))"),
            Fact(
                label: renderer.text("request_subject"),
                value: record.patientID.map { "\(renderer.text("request_patient")) \($0.uuidString.lowercased())" }
                    ?? "\(renderer.text("request_staff")) \(record.staffUsername ?? "?")"),
            Fact(
                label: renderer.text("request_capacity"),
                value: renderer.text("capacity_" + record.capacity.rawValue)
                    + (record.representation.map { " (\(renderer.text("representation_" + $0.rawValue)))" } ?? "")),
            Fact(label: renderer.text("request_requester"), value: record.requesterName ?? "—"),
            Fact(label: renderer.text("request_contact"), value: record.requesterContact ?? "—"),
            Fact(label: renderer.text("request_received"), value: ParisTime.format(record.receivedAt)),
            Fact(label: renderer.text("request_health"), value: renderer.text(record.healthInformation ? "yes" : "no")),
            Fact(
                label: renderer.text("request_status"),
                value: record.outcome.map { "\(renderer.text("outcome_" + $0.rawValue)) (\(record.closedAt.map(ParisTime.format) ?? ""))" }
                    ?? renderer.text("status_" + record.status)),
            Fact(label: renderer.text("request_opened"), value: "\(ParisTime.format(record.openedAt)) — \(record.openedBy)"),
        ]
        if let disposal = record.disposal {
            // The subject, the requester and the identity check were erased: say so, not "unknown".
            let erased = renderer.text("request_erased_at_disposal")
            facts = facts.map { fact in
                [renderer.text("request_subject"), renderer.text("request_requester"), renderer.text("request_contact")].contains(fact.label)
                    ? Fact(label: fact.label, value: erased) : fact
            }
            facts.append(Fact(label: renderer.text("request_disposed"), value: "\(ParisTime.format(disposal.at)) — \(renderer.text("request_disposed_detail"))"))
            facts.append(
                Fact(
                    label: renderer.text("request_disposal_plan"),
                    value: "n° \(disposal.planID) (SHA-256 \(disposal.planSHA256)), \(renderer.text("request_disposal_approved_by")) "
                        + "\(disposal.approvedBy), \(ParisTime.format(disposal.approvedAt))"))
        }
        if let latest = record.latestInformationOn { facts.append(Fact(label: renderer.text("request_latest"), value: Self.frenchDay(latest.description))) }
        if let notice = record.extensionNoticeOn { facts.append(Fact(label: renderer.text("request_extension"), value: Self.frenchDay(notice.description))) }
        if record.lateAcknowledged { facts.append(Fact(label: renderer.text("request_late"), value: renderer.text("yes"))) }
        if let due = record.dueOn { facts.append(Fact(label: renderer.text("request_due"), value: Self.frenchDay(due.description))) }
        let deadlines = record.deadlines.map { deadline in
            DeadlineRow(
                rule: deadline.rule.rawValue, citation: deadline.rule.citation,
                when: deadline.dueOn.map { "\(renderer.text("deadline_due")) \(Self.frenchDay($0.description))" }
                    ?? deadline.earliest.map { "\(renderer.text("deadline_not_before")) \(ParisTime.format($0))" } ?? "—",
                inForce: deadline.inForce)
        }
        let identity =
            record.disposal.map { _ in [Fact(label: renderer.text("request_identity"), value: renderer.text("request_erased_at_disposal"))] }
            ?? record.identityCheck.map { check in
                [
                    Fact(label: renderer.text("identity_by"), value: check.checkedBy),
                    Fact(label: renderer.text("identity_at"), value: ParisTime.format(check.checkedAt)),
                    Fact(label: renderer.text("identity_documents"), value: check.documents ?? "—"),
                ]
            } ?? []
        let citations = Dictionary(uniqueKeysWithValues: DeadlineRule.allCases.map { ($0.rawValue, $0.citation) })
        let stepRows = steps.reversed().map { step in
            StepRow(
                position: "\(step.position)", when: ParisTime.format(microseconds: step.occurredAt), actor: step.actor,
                kind: renderer.strings["step_" + step.kind] ?? step.kind,
                details: step.details.sorted { $0.key < $1.key }.map { key, value in
                    Fact(label: key, value: citations[key].map { "\(Self.frenchDayIfDate(value)) — \($0)" } ?? value)
                })
        }
        let now = ParisTime.format(Date())
        let parts = now.prefix(10).split(separator: "/")
        return RequestModel(
            number: "\(record.number)", open: record.isOpen, facts: facts, deadlines: deadlines, identityChecked: record.identityCheck != nil || record.disposal != nil,
            identity: identity,
            notes: notes.map { NoteRow(kind: renderer.strings["note_" + $0.kind] ?? $0.kind, when: ParisTime.format($0.writtenAt), by: $0.writtenBy, text: $0.text) },
            steps: stepRows, hasPack: (record.kind == .access || record.kind == .portability) && record.patientID != nil,
            isRectification: record.kind == .rectification && record.patientID != nil,
            outcomes: RequestOutcome.allCases.map { Choice(value: $0.rawValue, label: renderer.text("outcome_" + $0.rawValue), selected: false) },
            now: "\(parts[2])-\(parts[1])-\(parts[0])", nowTime: String(now.dropFirst(11).prefix(5)))
    }

    static func frenchDayIfDate(_ text: String) -> String {
        text.range(of: #"^\d{4}-\d{2}-\d{2}"#, options: .regularExpression) != nil && text.count == 10 ? frenchDay(text) : text
    }

    func checkIdentity(_ checked: Checked, number: Int64) async throws -> ConsoleView {
        let form = checked.form
        guard let by = form.text("checked_by") else { throw ConsolePageError.invalidInput("identity_bad_by") }
        guard let at = ParisTime.moment(day: form.text("checked_on") ?? "", time: form.text("checked_time") ?? "") else {
            throw ConsolePageError.invalidInput("identity_bad_at")
        }
        let check = IdentityCheck(checkedBy: by, checkedAt: at, documents: form.text("documents"))
        let register = register(for: checked, ring: try await keyring())
        try await pool.transaction { connection in
            let record = try register.checkIdentity(number: number, check, on: connection)
            checked.audit.touched(object: "\(number)", patient: record.patientID, purpose: .subjectRequest)
            checked.audit.acted(.update)
            try checked.audit.recordSuccess(on: connection)
        }
        return .redirect("/dpo/demandes/\(number)#identite")
    }

    func addNote(_ checked: Checked, number: Int64) async throws -> ConsoleView {
        guard let text = checked.form.text("note") else { throw ConsolePageError.invalidInput("note_empty") }
        let register = register(for: checked, ring: try await keyring())
        try await pool.transaction { connection in
            let record = try register.request(number: number, on: connection)
            _ = try register.addNote(number: number, text, on: connection)
            checked.audit.touched(object: "\(number)", patient: record.patientID, purpose: .subjectRequest)
            checked.audit.acted(.update)
            try checked.audit.recordSuccess(on: connection)
        }
        return .redirect("/dpo/demandes/\(number)#notes")
    }

    func closeRequest(_ checked: Checked, number: Int64) async throws -> ConsoleView {
        guard let outcome = checked.form.text("outcome").flatMap(RequestOutcome.init(rawValue:)) else { throw ConsolePageError.invalidInput("request_bad_choice") }
        let register = register(for: checked, ring: nil)
        try await pool.transaction { connection in
            let record = try register.close(number: number, outcome: outcome, on: connection)
            checked.audit.touched(object: "\(number)", patient: record.patientID, purpose: .subjectRequest)
            checked.audit.acted(.update)
            try checked.audit.recordSuccess(on: connection)
        }
        return .redirect("/dpo/demandes/\(number)")
    }

    // MARK: The access pack

    struct CellModel: Sendable {
        let column: String
        let value: String
        let redacted: Bool
    }

    struct RowModel: Sendable {
        let key: String
        let cells: [CellModel]
    }

    struct TableModel: Sendable {
        let table: String
        let title: String
        let rows: [RowModel]
        let count: String
    }

    struct ConsultationModel: Sendable {
        let sequence: String
        let when: String
        let who: String
        let action: String
        let purpose: String
        let result: String
    }

    struct RedactionModel: Sendable {
        let id: String
        let place: String
        let reason: String
        let text: String
    }

    struct PackModel: Sendable {
        let number: String
        let staffNames: Bool
        let tables: [TableModel]
        let consultations: [ConsultationModel]
        let consultationCount: String
        let checkpoint: String
        let redactions: [RedactionModel]
        let reasons: [Choice]
        let approved: Bool
        let approvedDigest: String
        let approvedCheckpoint: String
        let identityChecked: Bool
        let earliestRelease: String
        let tooEarly: Bool
    }

    /// The pack workflow and its register, both over the keyring.
    func workflow(_ checked: Checked) async throws -> (AccessPackWorkflow, RequestRegister) {
        let ring = try await keyring()
        let register = register(for: checked, ring: ring)
        return (AccessPackWorkflow(register: register, ring: ring), register)
    }

    func packPreview(_ checked: Checked, number: Int64, _ request: Request) async throws -> ConsoleView {
        let staffNames = request.uri.queryParameters.get("noms") == "oui"
        let (workflow, register) = try await workflow(checked)
        // The review is a step of the evidence file: it commits with the page view's event, or not at all.
        let (record, pack, redactions, approved) = try await pool.withConnection { connection in
            try await connection.transaction(isolation: .repeatableRead) { connection in
                let record = try register.request(number: number, on: connection)
                checked.audit.touched(object: "\(number)", patient: record.patientID, purpose: .subjectRequest)
                let pack = try workflow.review(number: number, staffNames: staffNames, on: connection)
                let redactions = try workflow.recordedRedactions(number: number, on: connection)
                let approved: (pack: AccessPack, json: [UInt8])?
                do {
                    approved = try workflow.approvedPack(number: number, on: connection)
                } catch let error as SubjectRequestError where error.code == .packNotApproved {
                    approved = nil
                }
                try checked.audit.recordSuccess(on: connection)
                return (record, pack, redactions, approved)
            }
        }
        let approvedDigest = approved.map { "sha256:" + Self.hex(SHA256.hash($0.json)) } ?? ""
        let tables = pack.tables.filter { !$0.rows.isEmpty }.map(Self.tableModel)
        let consultations = pack.consultations.map(Self.consultationModel)
        let redactionRows = redactions.map { id, redaction in
            RedactionModel(
                id: id.uuidString.lowercased(), place: "\(redaction.table) / \(redaction.row) / \(redaction.column)",
                reason: renderer.text("redaction_" + redaction.reason.rawValue), text: redaction.text)
        }
        let reasons = RedactionReason.allCases.map { Choice(value: $0.rawValue, label: renderer.text("redaction_" + $0.rawValue), selected: false) }
        let checkpoint = "#\(pack.journal.checkpointID) (\(renderer.text("checkpoint_size")) \(Self.grouped(pack.journal.treeSize)))"
        let approvedCheckpoint = approved.map { "#\($0.pack.journal.checkpointID)" } ?? ""
        let earliest = record.earliestAnswer
        let model = PackModel(
            number: "\(number)", staffNames: staffNames, tables: tables, consultations: consultations, consultationCount: "\(pack.consultations.count)",
            checkpoint: checkpoint, redactions: redactionRows, reasons: reasons, approved: approved != nil, approvedDigest: approvedDigest,
            approvedCheckpoint: approvedCheckpoint, identityChecked: record.identityCheck != nil, earliestRelease: earliest.map(ParisTime.format) ?? "",
            tooEarly: earliest.map { Date() < $0 } ?? false)
        return .page("dpo-pack", title: "pack_title", model)
    }

    static func tableModel(_ table: PackTable) -> TableModel {
        let rows = table.rows.map { row in
            RowModel(
                key: row.key,
                cells: row.columns.sorted { $0.key < $1.key }.map { column, cell in
                    CellModel(column: column, value: cell.value ?? "—", redacted: cell.source == .redacted)
                })
        }
        return TableModel(table: table.table, title: table.title, rows: rows, count: "\(table.rows.count)")
    }

    static func consultationModel(_ consultation: PackConsultation) -> ConsultationModel {
        let who: [String?] = [consultation.actorName ?? consultation.staff, consultation.actorRole, consultation.actorTeam]
        return ConsultationModel(
            sequence: "\(consultation.sequence)", when: frenchMoment(consultation.occurredAt), who: who.compactMap { $0 }.joined(separator: " — "),
            action: consultation.action, purpose: consultation.purpose ?? "—", result: consultation.result + (consultation.reason.map { " (\($0))" } ?? ""))
    }

    /// An RFC 3339 moment (the pack's) as Paris time.
    static func frenchMoment(_ text: String) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return ParisTime.format(date) }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text).map(ParisTime.format) ?? text
    }

    func redact(_ checked: Checked, number: Int64) async throws -> ConsoleView {
        let form = checked.form
        guard let table = form.text("table"), let row = form.text("row"), let column = form.text("column"), let text = checked.form["text"],
            !text.isEmpty
        else { throw ConsolePageError.invalidInput("redaction_incomplete") }
        guard let reason = form.text("reason").flatMap(RedactionReason.init(rawValue:)) else { throw ConsolePageError.invalidInput("request_bad_choice") }
        let (workflow, register) = try await workflow(checked)
        try await pool.transaction { connection in
            let record = try register.request(number: number, on: connection)
            let id = try workflow.redact(number: number, Redaction(table: table, row: row, column: column, text: text, reason: reason), on: connection)
            checked.audit.touched(object: "\(number)/\(id.uuidString.lowercased())", patient: record.patientID, purpose: .subjectRequest)
            checked.audit.acted(.update)
            try checked.audit.recordSuccess(on: connection)
        }
        return .redirect("/dpo/demandes/\(number)/dossier#occultations")
    }

    func withdrawRedaction(_ checked: Checked, number: Int64, redaction text: String?) async throws -> ConsoleView {
        guard let text, let id = UUID(uuidString: text) else { throw ConsolePageError.notFound }
        let (workflow, register) = try await workflow(checked)
        try await pool.transaction { connection in
            let record = try register.request(number: number, on: connection)
            try workflow.withdrawRedaction(number: number, redaction: id, on: connection)
            checked.audit.touched(object: "\(number)/\(id.uuidString.lowercased())", patient: record.patientID, purpose: .subjectRequest)
            checked.audit.acted(.update)
            try checked.audit.recordSuccess(on: connection)
        }
        return .redirect("/dpo/demandes/\(number)/dossier#occultations")
    }

    func approvePack(_ checked: Checked, number: Int64) async throws -> ConsoleView {
        let staffNames = checked.form.text("staff_names") == "oui"
        let (workflow, register) = try await workflow(checked)
        try await pool.withConnection { connection in
            try await connection.transaction(isolation: .repeatableRead) { connection in
                let record = try register.request(number: number, on: connection)
                let approved = try workflow.approve(number: number, staffNames: staffNames, on: connection)
                checked.audit.touched(object: "\(number)", patient: record.patientID, purpose: .subjectRequest)
                checked.audit.acted(.update)
                checked.audit.note("pack approved: \(approved.contentSHA256)")
                try checked.audit.recordSuccess(on: connection)
            }
        }
        return .redirect("/dpo/demandes/\(number)/dossier#approbation")
    }

    /// Seals the approved pack for the requester (their age key, or a passphrase given
    /// to them by another channel) and hands the sealed file to the DPO's browser: it
    /// is written in a private scratch directory, read back, and removed; the register
    /// keeps its digest. A pack is released once.
    func releasePack(_ checked: Checked, number: Int64) async throws -> ConsoleView {
        let form = checked.form
        let target: SealTarget
        switch form.text("seal") {
        case "cle":
            guard let recipient = form.text("recipient") else { throw ConsolePageError.invalidInput("release_bad_recipient") }
            target = .recipient(recipient)
        case "phrase":
            guard let passphrase = form["passphrase"], !passphrase.isEmpty else { throw ConsolePageError.invalidInput("release_bad_passphrase") }
            target = .passphrase(passphrase)
        default:
            throw ConsolePageError.invalidInput("release_bad_recipient")
        }
        let (workflow, register) = try await workflow(checked)
        let establishment = configuration.subjectRequests.establishment
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let path = scratch.path + "/pack.age"
        let released = try await pool.transaction { connection in
            let record = try register.request(number: number, on: connection)
            let released = try workflow.release(number: number, to: target, path: path, establishment: establishment, on: connection)
            checked.audit.touched(object: "\(number)", patient: record.patientID, purpose: .subjectRequest)
            checked.audit.note("pack released: \(released.file.sha256)")
            try checked.audit.recordSuccess(on: connection)
            return released
        }
        guard let bytes = FileManager.default.contents(atPath: released.file.path) else { throw ConsolePageError.internalError }
        return ConsoleView(body: .download(filename: "osmose-demande-\(number).age", contentType: "application/octet-stream", bytes: Array(bytes)))
    }

    // MARK: Rectification recipients

    struct RecipientRow: Sendable {
        let who: String
        let role: String
        let reads: String
        let first: String
        let last: String
        let fields: String
    }

    struct RectificationModel: Sendable {
        let fields: String
        let versions: String
        let when: String
        let recipients: [RecipientRow]
        let none: Bool
    }

    struct RecipientsModel: Sendable {
        let number: String
        let rectifications: [RectificationModel]
        let empty: Bool
    }

    func recipients(_ checked: Checked, number: Int64) async throws -> ConsoleView {
        let ring = try await keyring()
        let register = register(for: checked, ring: ring)
        let rectifications = Rectifications(register: register, ring: ring)
        // Listing the recipients the first time records them (and a step): with the page view's event, or not at all.
        let listed = try await pool.transaction { connection in
            let record = try register.request(number: number, on: connection)
            let listed = try rectifications.listRecipients(number: number, on: connection)
            checked.audit.touched(object: "\(number)", patient: record.patientID, purpose: .subjectRequest)
            try checked.audit.recordSuccess(on: connection)
            return listed
        }
        let model = RecipientsModel(
            number: "\(number)",
            rectifications: listed.map { rectification in
                let recipients = (rectification.recipients ?? []).map { recipient in
                    RecipientRow(
                        who: recipient.username ?? recipient.userID ?? "?", role: [recipient.role, recipient.team].compactMap { $0 }.joined(separator: " — "),
                        reads: "\(recipient.reads)", first: Self.frenchMoment(recipient.firstRead), last: Self.frenchMoment(recipient.lastRead),
                        fields: recipient.fields.joined(separator: ", "))
                }
                return RectificationModel(
                    fields: rectification.fields.joined(separator: ", "), versions: "\(rectification.oldVersion) → \(rectification.newVersion)",
                    when: ParisTime.format(rectification.rectifiedAt), recipients: recipients, none: recipients.isEmpty)
            }, empty: listed.isEmpty)
        return .page("dpo-recipients", title: "recipients_title", model)
    }
}

/// A private directory for one sealed file, removed after use.
struct ScratchDirectory {
    let path: String

    init() throws {
        let path = NSTemporaryDirectory() + "osmose-console-" + UUID().uuidString.lowercased()
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ConsolePageError.internalError
        }
        self.path = path
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
