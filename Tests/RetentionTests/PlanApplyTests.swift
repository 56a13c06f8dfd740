import CareRecords
import Foundation
import Journal
import Keyring
import Retention
import Store
import Testing
import TestSupport

@Suite("Plans, approvals and runs against a real database")
struct PlanApplyTests {
    /// The synthetic histories every test here starts from, and what the clock says of each.
    struct Population {
        let lastEpisode: UUID  // closed 2000-01-10: due since 2020-01-11
        let recent: UUID  // closed 2015: not due
        let heldPatient: UUID  // due, a hold names the patient
        let heldEpisode: UUID  // due, a hold names one of its episodes
        let open: UUID  // an episode open since 1995: never
        let diedWithin: UUID  // last episode 2000-03-01, died 2004-05-05: due since 2014-05-06
        let minor: UUID  // born 2010, last episode 2011: until 2038
        let registeredOnly: UUID  // registered 2001-09-09, no episode: due since 2021-09-10
        let heldEpisodeID: UUID
        let oldSessions: [String]
        let recentSession: String
        let patientHold: Int64
        let episodeHold: Int64

        var due: Set<UUID> { [lastEpisode, diedWithin, registeredOnly] }
        var untouched: [UUID] { [recent, heldPatient, heldEpisode, open, minor] }
    }

    static func populate(_ fixture: RetentionFixture) async throws -> Population {
        let lastEpisode = try await fixture.patient(
            "Vautrinière", "Philibertine", born: "1950-06-10", ins: "250067512345608",
            stays: [.init("1999-12-24", closed: "2000-01-10", transmissions: ["Transmission-secrete-numero-un"])], reason: "Idees-noires-confidentielles")
        let recent = try await fixture.patient("Recent", born: "1960-01-01", stays: [.init("2015-02-01", closed: "2015-02-03")])
        let heldPatient = try await fixture.patient("Tenu", born: "1940-01-01", stays: [.init("1999-01-01", closed: "1999-01-05")])
        let heldEpisodeOwner = try await fixture.patient("Episode", born: "1941-01-01", stays: [.init("1998-01-01", closed: "1998-01-02")])
        let open = try await fixture.patient("Ouvert", born: "1930-01-01", stays: [.init("1995-01-01", closed: nil)])
        let diedWithin = try await fixture.patient(
            "Decede", born: "1935-03-03", stays: [.init("2000-02-20", closed: "2000-03-01", transmissions: ["Derniere-transmission"])], died: "2004-05-05")
        let minor = try await fixture.patient("Mineur", born: "2010-05-05", stays: [.init("2011-01-01", closed: "2011-01-02")])
        let registeredOnly = try await fixture.patient("Inscrit", born: "1970-07-07", registered: "2001-09-09")
        let episodeID = try await fixture.admin.query("SELECT id FROM care.episodes WHERE patient_id = $1", [heldEpisodeOwner]).rows[0].uuid("id")
        let dpo = SystemActor.operator("dpo@test via osmosectl", role: .dpo)
        let (patientHold, episodeHold) = try await fixture.admin.transaction { connection in
            (
                try LegalHolds.place(.patient(heldPatient), reason: "Contentieux en cours devant le tribunal", reference: "TJ Paris RG 24/01234", by: dpo, on: connection).id,
                try LegalHolds.place(.episode(episodeID), reason: "Enquête interne sur un accès", reference: "RSSI-2026-17", by: dpo, on: connection).id
            )
        }
        var old: [String] = []
        for day in ["2020-01-01", "2021-06-30", "2024-02-29"] { old.append(try await fixture.session(endedOn: day)) }
        let today = fixture.today.description
        let recentSession = try await fixture.session(endedOn: today)
        return Population(
            lastEpisode: lastEpisode, recent: recent, heldPatient: heldPatient, heldEpisode: heldEpisodeOwner, open: open, diedWithin: diedWithin, minor: minor,
            registeredOnly: registeredOnly, heldEpisodeID: episodeID, oldSessions: old.sorted(), recentSession: recentSession, patientHold: patientHold,
            episodeHold: episodeHold)
    }

    static func key(_ patient: UUID) -> String { "care-record/\(patient.uuidString.lowercased())" }

    func day(_ text: String) -> CivilDate { try! CivilDate(parsing: text) }

    @Test("The plan lists exactly the due items with their rule and dates, and the held ones with their hold; applied, it does exactly what it showed and touches nothing else")
    func planThenApply() async throws {
        try await RetentionFixture.with("ret_plan_apply") { fixture in
            let population = try await Self.populate(fixture)
            let plan = try await fixture.builder().plan(kind: .reviewed, asOf: fixture.today, on: fixture.admin)
            let careKeys = Set(plan.items.filter { $0.dataClass == .careRecords }.map(\.key))
            #expect(careKeys == Set(population.due.map(Self.key)))
            #expect(Set(plan.items.filter { $0.dataClass == .sessions }.map(\.target)) == Set(population.oldSessions))
            let byKey = Dictionary(uniqueKeysWithValues: plan.items.map { ($0.key, $0) })
            let first = try #require(byKey[Self.key(population.lastEpisode)])
            #expect(first.dueOn == day("2020-01-11") && first.basis == ["last_episode": day("2000-01-10")])
            #expect(first.rule.contains("20 years after the last care episode") && first.action == .pseudonymise)
            let died = try #require(byKey[Self.key(population.diedWithin)])
            #expect(died.dueOn == day("2014-05-06") && died.basis["death"] == day("2004-05-05"))
            #expect(byKey[Self.key(population.registeredOnly)]?.dueOn == day("2021-09-10"))
            let held = Dictionary(uniqueKeysWithValues: plan.held.map { ($0.key, $0.heldBy ?? []) })
            #expect(held == [Self.key(population.heldPatient): [population.patientHold], Self.key(population.heldEpisode): [population.episodeHold]])

            let dpo = SystemActor.operator("dpo@test via osmosectl", role: .dpo)
            let stored = try await fixture.admin.transaction { try PlanStore.save(plan, computedBy: dpo.name, on: $0) }
            #expect(stored.sha256 == RetentionPlan.digest(try plan.canonicalText()))
            let untouchedBefore = try await population.untouched.asyncMap { try await fixture.rows(of: $0) }
            _ = try await fixture.admin.transaction { try PlanStore.approve(stored.id, sha256: stored.sha256, approverName: "Jeanne Martin", by: dpo, on: $0) }

            // A dry run changes nothing and says the same.
            let dry = try await fixture.asRetention { try await fixture.applier().apply(plan: stored.id, dryRun: true, on: $0) }
            #expect(dry.outcomes.map(\.key) == plan.items.map(\.key) && dry.outcomes.allSatisfy { $0.outcome == .done } && dry.run == nil)
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM care.patients WHERE pseudonymised_at IS NOT NULL").rows[0].int("n") == 0)

            let report = try await fixture.asRetention { try await fixture.applier().apply(plan: stored.id, on: $0) }
            // Item by item, what was done is what the plan showed.
            #expect(report.outcomes.map(\.key) == plan.items.map(\.key))
            #expect(report.outcomes.allSatisfy { $0.outcome == .done }, "\(report.outcomes.filter { $0.outcome != .done })")
            #expect(dry.outcomes.map(\.valuesRemoved) == report.outcomes.map(\.valuesRemoved))
            #expect(dry.outcomes.map(\.removedSHA256) == report.outcomes.map(\.removedSHA256), "the dry run's digests are the run's")
            let pseudonymised = Set(try await fixture.admin.query("SELECT id FROM care.patients WHERE pseudonymised_at IS NOT NULL").rows.map { try $0.uuid("id") })
            #expect(pseudonymised == population.due)
            for (patient, before) in zip(population.untouched, untouchedBefore) {
                #expect(try await fixture.rows(of: patient) == before, "nothing held or not yet due was touched")
            }
            let sessions = Set(try await fixture.admin.query("SELECT encode(token_hash, 'hex') AS h FROM care.sessions").rows.map { try $0.string("h") })
            #expect(sessions == [population.recentSession])

            // The certificate: every item with its outcome and digest, the approval; announced in the journal.
            let certificate = try #require(report.certificateSHA256)
            let record = try await fixture.admin.perform { try Certificates.list(on: $0) }.first
            #expect(record?.sha256 == certificate && record?.certificate.approval.approver == "Jeanne Martin")
            #expect(record?.certificate.items.map(\.key) == plan.items.map(\.key))
            #expect(record?.certificate.items.map(\.removedSHA256) == report.outcomes.map(\.removedSHA256))
            let events = try await fixture.admin.query(
                "SELECT object_type, object_id, patient_id, actor_role, source, reason FROM journal.intake WHERE action = 'retention-admin' ORDER BY id"
            ).rows
            let pseudonymisedEvents = try events.filter { try $0.string("object_type") == "care-record" }
            #expect(Set(try pseudonymisedEvents.map { try $0.uuid("patient_id") }) == population.due)
            #expect(try pseudonymisedEvents.allSatisfy { try $0.string("actor_role") == "system" && $0.string("source") == "osmose-retentiond" })
            #expect(try events.contains { try $0.string("object_type") == "retention-certificate" && $0.string("reason").contains(certificate) })
            #expect(try events.contains { try $0.string("object_type") == "retention-plan" && $0.string("actor_role") == "dpo" })

            // Applying again does nothing more; the finished plan is not applicable any more.
            let again = try await fixture.asRetention { try await fixture.applier().apply(plan: stored.id, on: $0) }
            #expect(again.certificateSHA256 == nil && again.outcomes.map(\.key) == plan.items.map(\.key))
            #expect(try await fixture.admin.perform { try PlanStore.applicable(on: $0) }.isEmpty)
        }
    }

    @Test("A pseudonymised record: shown as such, refused to every change by the store and by the database; its pseudonym is the keyed HMAC of its identity, and needs the key")
    func pseudonymisedRecord() async throws {
        try await RetentionFixture.with("ret_pseudonym") { fixture in
            let population = try await Self.populate(fixture)
            let dpo = SystemActor.operator("dpo@test via osmosectl", role: .dpo)
            let plan = try await fixture.builder().plan(kind: .reviewed, asOf: fixture.today, on: fixture.admin)
            let stored = try await fixture.admin.transaction { try PlanStore.save(plan, computedBy: dpo.name, on: $0) }
            _ = try await fixture.admin.transaction { try PlanStore.approve(stored.id, sha256: stored.sha256, approverName: "Jeanne Martin", by: dpo, on: $0) }
            _ = try await fixture.asRetention { try await fixture.applier().apply(plan: stored.id, on: $0) }

            let store = fixture.store
            let view = try await fixture.admin.perform { [population] in try store.patient(population.lastEpisode, on: $0) }
            #expect(view.lastName == nil && view.firstName == nil && view.birthDate == nil && view.ins == nil && view.dateOfDeath == nil)
            #expect(view.birthYear == 1950 && view.pseudonymisedAt != nil && view.sex == .female)
            let pseudonym = try #require(view.pseudonym)
            #expect(pseudonym.range(of: "^PSN-[A-Z2-7]{26}$", options: .regularExpression) != nil)
            let died = try await fixture.admin.perform { [population] in try store.patient(population.diedWithin, on: $0) }
            #expect(died.deathYear == 2004 && died.birthYear == 1935)
            let episodes = try await fixture.admin.perform { [population] connection in
                try store.listEpisodes(team: nil, state: "all", for: fixture.principal, teamScoped: false, on: connection).filter { $0.patientId == population.lastEpisode }
            }
            #expect(episodes.count == 1 && episodes[0].reason == nil && episodes[0].pseudonymisedAt != nil && episodes[0].status == "closed")
            #expect(episodes[0].timeInCareSeconds > 0, "durations stay for statistics")
            let transmissions = try await fixture.admin.perform { try store.transmissions(episodeID: episodes[0].id, for: fixture.principal, teamScoped: false, on: $0) }
            #expect(transmissions.count == 1 && transmissions[0].body == nil && transmissions[0].checklist.isEmpty)
            let history = try await fixture.admin.perform { [population] in try store.history(.patient, id: population.lastEpisode, on: $0) }
            #expect(!history.isEmpty && history.allSatisfy { $0.state.isEmpty && $0.erasedAt != nil })

            // The store refuses every change; so does the database, whoever asks.
            let patch = try CareJSON.decode(PatientPatch.self, from: Array(#"{"first_name":"Nouveau"}"#.utf8))
            let refusals: [@Sendable (isolated Connection) throws -> Void] = [
                { _ = try store.updatePatient(population.lastEpisode, patch, by: fixture.principal, on: $0) },
                { _ = try store.setDateOfDeath(population.lastEpisode, to: "2020-01-01", by: .user(fixture.principal), on: $0) },
                { _ = try store.closeEpisode(episodes[0].id, by: fixture.principal, teamScoped: false, on: $0) },
                {
                    _ = try store.createEpisode(
                        try CareJSON.decode(EpisodeInput.self, from: Array(#"{"patient_id":"\#(population.lastEpisode)","arrival_mode":"walk-in","reason":"x"}"#.utf8)),
                        by: fixture.principal, teamScoped: false, on: $0)
                },
            ]
            for refusal in refusals {
                let error = await #expect(throws: CareError.self) { try await fixture.admin.transaction(refusal) }
                #expect(error?.code == .pseudonymised)
            }
            for statement in [
                "UPDATE care.patients SET pseudonym = 'PSN-AAAAAAAAAAAAAAAAAAAAAAAAAA' WHERE id = $1",
                "UPDATE care.episodes SET status = 'open', closed_at = NULL WHERE patient_id = $1",
                "UPDATE care.record_versions SET changed_fields = '{x}' WHERE record_id = $1",
            ] {
                let error = await #expect(throws: StoreError.self) { try await fixture.admin.query(statement, [population.lastEpisode]) }
                #expect(error?.sqlState == "OSC01", "\(statement)")
            }

            // The pseudonym is the HMAC of the INS under the pseudonymisation key; another key, or the blind-index key, gives another.
            let pseudonymiser = Pseudonymiser(ring: fixture.ring)
            let keyID = try pseudonymiser.primaryKeyID()
            #expect(try pseudonymiser.pseudonym(domain: "patient.ins", parts: ["250067512345608"], keyID: keyID) == pseudonym)
            #expect(try await fixture.admin.query("SELECT pseudonym_key_id FROM care.patients WHERE id = $1", [population.lastEpisode]).rows[0].int("pseudonym_key_id") == keyID)
            let name = try await fixture.admin.query("SELECT pseudonym FROM care.patients WHERE id = $1", [population.registeredOnly]).rows[0].string("pseudonym")
            #expect(try pseudonymiser.pseudonym(domain: "patient.name-birth", parts: ["INSCRIT", "camille", "1970-07-07"], keyID: keyID) == name, "case and accents do not matter")
            try await TestDatabase.with("ret_pseudonym_other") { other in
                let connection = try await Connection.connect(other.connectionString, logger: testLogger)
                defer { Task { await connection.close() } }
                try await migrate(connection)
                let otherMaster = try MasterKey.generate()
                try await DataKeyRing.initialise(on: connection, master: otherMaster, createdBy: "tests")
                let otherRing = try await DataKeyRing.load(on: connection, master: otherMaster)
                let withoutKey = try Pseudonymiser(ring: otherRing).pseudonym(
                    domain: "patient.ins", parts: ["250067512345608"], keyID: try Pseudonymiser(ring: otherRing).primaryKeyID())
                #expect(withoutKey != pseudonym)
            }
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM care.patients WHERE search_name IS NULL AND search_ins IS NULL AND blind_key_id IS NULL").rows[0].int("n") == 3)
        }
    }

    @Test("Refused with a clear error and nothing changed: another plan's digest, a malformed digest, a preview, a second approval, an unapproved plan, a plan edited after approval")
    func badInput() async throws {
        try await RetentionFixture.with("ret_bad_input") { fixture in
            let population = try await Self.populate(fixture)
            let dpo = SystemActor.operator("dpo@test via osmosectl", role: .dpo)
            func stored(_ kind: RetentionPlan.Kind, _ day: CivilDate) async throws -> StoredPlan {
                let plan = try await fixture.builder().plan(kind: kind, asOf: day, on: fixture.admin)
                return try await fixture.admin.transaction { try PlanStore.save(plan, computedBy: dpo.name, on: $0) }
            }
            let first = try await stored(.reviewed, fixture.today)
            let second = try await stored(.reviewed, fixture.today)
            #expect(first.sha256 != second.sha256, "each plan carries the moment it was computed")
            let preview = try await stored(.preview, fixture.today.adding(years: 1))
            func approve(_ id: Int64, _ digest: String) async throws { _ = try await fixture.admin.transaction { try PlanStore.approve(id, sha256: digest, approverName: "Jeanne Martin", by: dpo, on: $0) } }
            func approvals() async throws -> Int { try await fixture.admin.query("SELECT count(*) AS n FROM ops.retention_approvals").rows[0].int("n") }

            for (id, digest, code) in [
                (first.id, second.sha256, RetentionError.Code.digestMismatch), (first.id, "abc", .invalidArgument), (preview.id, preview.sha256, .refused),
                (9999, first.sha256, .notFound),
            ] {
                let error = await #expect(throws: RetentionError.self) { try await approve(id, digest) }
                #expect(error?.code == code, "plan \(id)")
            }
            #expect(try await approvals() == 0)
            // The database refuses an approval of another digest even when asked directly.
            let direct = await #expect(throws: StoreError.self) {
                try await fixture.admin.query(
                    "INSERT INTO ops.retention_approvals (plan_id, sha256, approver_name, approved_by) VALUES ($1, $2, 'X Y', 'sql')", [first.id, second.sha256])
            }
            #expect(direct?.sqlState == "OSR02")
            let unapproved = await #expect(throws: RetentionError.self) { try await fixture.asRetention { try await fixture.applier().apply(plan: first.id, on: $0) } }
            #expect(unapproved?.code == .refused && unapproved?.message.contains("not approved") == true)
            let previewApply = await #expect(throws: RetentionError.self) { try await fixture.asRetention { try await fixture.applier().apply(plan: preview.id, on: $0) } }
            #expect(previewApply?.code == .refused)

            try await approve(first.id, first.sha256.uppercased())
            let twice = await #expect(throws: RetentionError.self) { try await approve(first.id, first.sha256) }
            #expect(twice?.code == .refused)
            // The retention role cannot approve, edit, or delete a plan.
            let asDaemon = await #expect(throws: StoreError.self) {
                try await fixture.asRetention {
                    try await $0.query("INSERT INTO ops.retention_approvals (plan_id, sha256, approver_name, approved_by) VALUES ($1, $2, 'X Y', 'x')", [second.id, second.sha256])
                }
            }
            #expect(asDaemon?.sqlState == "42501")

            // Someone edits the approved plan behind the database's back (triggers off), keeping
            // the digest column consistent with the new text: the approval no longer matches.
            let before = try await fixture.rows(of: population.lastEpisode)
            let edited = first.plan.items.filter { $0.dataClass != .careRecords || $0.target == population.lastEpisode.uuidString.lowercased() }
            var tampered = first.plan
            tampered.items = edited + [PlanItem(key: Self.key(population.recent), dataClass: .careRecords, action: .pseudonymise, rule: "x", basis: [:], dueOn: fixture.today)]
            let text = try tampered.canonicalText()
            try await fixture.admin.execute("ALTER TABLE ops.retention_plans DISABLE TRIGGER immutable")
            try await fixture.admin.query("UPDATE ops.retention_plans SET document = $2, sha256 = $3 WHERE id = $1", [first.id, text, RetentionPlan.digest(text)])
            let changed = await #expect(throws: RetentionError.self) { try await fixture.asRetention { try await fixture.applier().apply(plan: first.id, on: $0) } }
            #expect(changed?.code == .refused && changed?.message.contains("not approved") == true, "\(String(describing: changed))")
            // Or edits only the text (the check constraint dropped): the stored digest no longer matches.
            try await fixture.admin.execute("ALTER TABLE ops.retention_plans DROP CONSTRAINT retention_plans_check")
            try await fixture.admin.query("UPDATE ops.retention_plans SET document = $2, sha256 = $3 WHERE id = $1", [first.id, try first.plan.canonicalText(), first.sha256])
            try await fixture.admin.query("UPDATE ops.retention_plans SET document = replace(document, '\"as_of\"', '\"as_of\" ') WHERE id = $1", [first.id])
            let modified = await #expect(throws: RetentionError.self) { try await fixture.asRetention { try await fixture.applier().apply(plan: first.id, on: $0) } }
            #expect(modified?.code == .planModified)
            #expect(try await fixture.rows(of: population.lastEpisode) == before, "nothing was changed")
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM ops.retention_runs").rows[0].int("n") == 0)
        }
    }

    @Test("Checked again when applied: an episode opened, a hold placed after the approval, a record pseudonymised by another plan are skipped and say why; a released hold lets the next plan act")
    func revalidation() async throws {
        try await RetentionFixture.with("ret_revalidate") { fixture in
            let population = try await Self.populate(fixture)
            let dpo = SystemActor.operator("dpo@test via osmosectl", role: .dpo)
            let plan = try await fixture.builder().plan(kind: .reviewed, asOf: fixture.today, on: fixture.admin)
            let stored = try await fixture.admin.transaction { try PlanStore.save(plan, computedBy: dpo.name, on: $0) }
            _ = try await fixture.admin.transaction { try PlanStore.approve(stored.id, sha256: stored.sha256, approverName: "Jeanne Martin", by: dpo, on: $0) }
            // After the approval: the patient comes back (an open episode), and a hold is placed on another.
            let store = fixture.store
            _ = try await fixture.admin.transaction { [population] connection in
                try store.createEpisode(
                    try CareJSON.decode(EpisodeInput.self, from: Array(#"{"patient_id":"\#(population.lastEpisode)","arrival_mode":"walk-in","reason":"Retour"}"#.utf8)),
                    by: fixture.principal, teamScoped: false, on: connection)
            }
            let hold = try await fixture.admin.transaction { [population] in
                try LegalHolds.place(.patient(population.diedWithin), reason: "Demande du juge d'instruction", reference: "JI-2026-3", by: dpo, on: $0)
            }
            let report = try await fixture.asRetention { try await fixture.applier().apply(plan: stored.id, on: $0) }
            let outcomes = Dictionary(uniqueKeysWithValues: report.outcomes.map { ($0.key, $0) })
            #expect(outcomes[Self.key(population.lastEpisode)]?.outcome == .skipped && outcomes[Self.key(population.lastEpisode)]?.detail.contains("an episode is open") == true)
            #expect(outcomes[Self.key(population.diedWithin)]?.detail == "kept by legal hold \(hold.id)")
            #expect(outcomes[Self.key(population.registeredOnly)]?.outcome == .done)
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM care.patients WHERE pseudonymised_at IS NOT NULL").rows[0].int("n") == 1)

            // Released: the next plan takes it; the hold itself cannot be released twice or edited.
            _ = try await fixture.admin.transaction { try LegalHolds.release(hold.id, reason: "Non-lieu prononcé, fin de la procédure", by: dpo, on: $0) }
            let twice = await #expect(throws: RetentionError.self) {
                try await fixture.admin.transaction { try LegalHolds.release(hold.id, reason: "Non-lieu prononcé, fin de la procédure", by: dpo, on: $0) }
            }
            #expect(twice?.code == .refused)
            let edit = await #expect(throws: StoreError.self) { try await fixture.admin.query("UPDATE ops.legal_holds SET reference = 'x' WHERE id = $1", [population.patientHold]) }
            #expect(edit?.sqlState == "OSR01")
            let next = try await fixture.builder().plan(kind: .reviewed, asOf: fixture.today, on: fixture.admin)
            #expect(Set(next.items.filter { $0.dataClass == .careRecords }.map(\.key)) == [Self.key(population.diedWithin)])
            #expect(next.held.count == 2)
            let unknown = await #expect(throws: RetentionError.self) {
                try await fixture.admin.transaction { try LegalHolds.place(.patient(UUID()), reason: "Contentieux quelconque", reference: "X", by: dpo, on: $0) }
            }
            #expect(unknown?.code == .notFound)
            let short = await #expect(throws: RetentionError.self) {
                try await fixture.admin.transaction { [population] in try LegalHolds.place(.patient(population.recent), reason: "court", reference: "X", by: dpo, on: $0) }
            }
            #expect(short?.code == .invalidArgument)
        }
    }

    @Test("Stopped between batches and resumed, a run ends in exactly the state of an uninterrupted one, with the same certificate items")
    func resumedRun() async throws {
        try await RetentionFixture.with("ret_resume") { fixture in
            for index in 0..<23 {
                try await fixture.patient("Ancien-\(KeyLetters.of(index))", born: "1940-01-01", stays: [.init("1990-01-01", closed: "1990-02-0\(index % 9 + 1)", transmissions: ["note \(index)"])])
            }
            let dpo = SystemActor.operator("dpo@test via osmosectl", role: .dpo)
            let plan = try await fixture.builder().plan(kind: .reviewed, asOf: fixture.today, on: fixture.admin)
            #expect(plan.items.count == 23)
            let stored = try await fixture.admin.transaction { try PlanStore.save(plan, computedBy: dpo.name, on: $0) }
            _ = try await fixture.admin.transaction { try PlanStore.approve(stored.id, sha256: stored.sha256, approverName: "Jeanne Martin", by: dpo, on: $0) }
            // A copy of the database before the run, for the uninterrupted run.
            let copyDatabase = try await fixture.copy()
            defer { Task { await copyDatabase.drop() } }
            let applier = fixture.applier(batchSizes: .init(sizes: [.careRecords: 5]))
            let counter = BatchCounter()
            var rounds = 0
            while true {
                rounds += 1
                // Stop after two batches each time.
                counter.reset()
                let report = try await fixture.asRetention { try await applier.apply(plan: stored.id, stop: { counter.next() > 2 }, on: $0) }
                if !report.interrupted { break }
            }
            #expect(rounds == 3, "23 items in batches of 5, two batches a round")
            let uninterrupted = try await Connection.withConnection("\(copyDatabase.connectionString) user=osmose_retention", logger: testLogger) {
                try await applier.apply(plan: stored.id, on: $0)
            }
            #expect(uninterrupted.certificateSHA256 != nil)
            func state(_ connection: Connection) async throws -> [String] {
                try await connection.query(
                    """
                    SELECT p.id::text || ' ' || coalesce(p.pseudonym, '-') || ' ' || coalesce(p.birth_year::text, '-') || ' ' || (p.last_name IS NULL)::text
                        || ' ' || (SELECT string_agg((t.body IS NULL)::text, ',') FROM care.transmissions t JOIN care.episodes e ON e.id = t.episode_id WHERE e.patient_id = p.id) AS line
                    FROM care.patients p ORDER BY p.id
                    """
                ).rows.map { try $0.string("line") }
            }
            let interrupted = try await state(fixture.admin)
            let whole = try await Connection.withConnection(copyDatabase.connectionString, logger: testLogger) { try await state($0) }
            #expect(interrupted == whole)
            let items = try await fixture.admin.query("SELECT item_key, outcome, values_removed, removed_sha256 FROM ops.retention_run_items ORDER BY item_key").rows.map {
                try "\($0.string("item_key")) \($0.string("outcome")) \($0.int64("values_removed")) \($0.optionalString("removed_sha256") ?? "-")"
            }
            let copyItems = try await Connection.withConnection(copyDatabase.connectionString, logger: testLogger) { connection in
                try await connection.query("SELECT item_key, outcome, values_removed, removed_sha256 FROM ops.retention_run_items ORDER BY item_key").rows.map {
                    try "\($0.string("item_key")) \($0.string("outcome")) \($0.int64("values_removed")) \($0.optionalString("removed_sha256") ?? "-")"
                }
            }
            #expect(items == copyItems && items.count == 23)
        }
    }
}

/// Counts batches across a run's stop checks.
final class BatchCounter: Sendable {
    private let count = Locked(0)
    func next() -> Int { count.withLock { $0 += 1; return $0 } }
    func reset() { count.withLock { $0 = 0 } }
}

/// Names may hold no digits.
enum KeyLetters {
    static func of(_ index: Int) -> String {
        var text = "", rest = index
        repeat {
            text.append(Character(UnicodeScalar(UInt8(97 + rest % 26))))
            rest /= 26
        } while rest > 0
        return text
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
