import Age
import CareRecords
import Foundation
import Journal
import Keyring
import Logging
import Store
@testable import SubjectRequestService
import Systemd
import SubjectRequests
import Testing
import TestSupport

@Suite("Subject requests from receipt to answer, against PostgreSQL")
struct RequestWorkflowTests {
    @Test("Rectification then access: the pack shows old and new values with their versions; the recipients are the readers the journal holds")
    func rectificationThenAccess() async throws {
        try await DSARFixture.with("dsar_rectify") { fixture in
            let patient = try await fixture.createPatient("Dupont", "Jeanne", "1971-02-03")
            let episode = try await fixture.createEpisode(patient.id, reason: "Chute")
            _ = episode
            // Reads of the old value, a refused read (not a recipient), and reads of another patient.
            try await fixture.read(patient.id, by: "yanis.epl")
            try await fixture.read(patient.id, by: "yanis.epl", objectType: "patient-history")
            try await fixture.read(patient.id, by: "dominique.sau")
            try await fixture.read(patient.id, by: "leo.epl", result: .denied)
            let other = try await fixture.createPatient("Durand", "Paul", "1971-02-03")
            try await fixture.read(other.id, by: "leo.epl")
            try await fixture.sequence()

            let request = try await fixture.open(.rectification, patient: patient)
            let rectifications = Rectifications(register: fixture.register(), ring: fixture.ring, inFlightMargin: 0)
            let rectified = try await fixture.dsar.transaction { connection in
                try rectifications.rectify(number: request.number, values: ["last_name": "Dupond", "birth_date": "1971-02-04"], on: connection)
            }
            #expect(rectified.fields == ["birth_date", "last_name"] && rectified.oldVersion == 1 && rectified.newVersion == 2)
            // Reads after the rectification saw the new value: not recipients.
            try await fixture.read(patient.id, by: "leo.epl")
            let notYet = await #expect(throws: SubjectRequestError.self) {
                _ = try await fixture.dsar.transaction { connection in try rectifications.listRecipients(number: request.number, on: connection) }
            }
            #expect(notYet?.code == .journalNotReady, "the rectification's own event is not sequenced yet")
            try await fixture.sequence()
            let listed = try await fixture.dsar.transaction { connection in try rectifications.listRecipients(number: request.number, on: connection) }
            let recipients = try #require(listed.first?.recipients)

            // The readers the journal holds, found independently: every successful read or export between the old value's writing and the rectification.
            let written = try await fixture.admin.query(
                "SELECT changed_at FROM care.record_versions WHERE record_type = 'patient' AND record_id = $1 AND version = 1", [patient.id]
            ).rows[0].date("changed_at")
            let readers = try await fixture.admin.perform { connection in
                try JournalSearch(patientID: patient.id, result: .success, occurredFrom: written, occurredBefore: rectified.rectifiedAt, limit: 100_000)
                    .entries(on: connection).filter { $0.action == "read" || $0.action == "export" }
            }
            #expect(Set(recipients.map(\.username)) == Set(readers.map(\.actorUsername)))
            #expect(Set(recipients.compactMap(\.username)) == ["yanis.epl", "dominique.sau"])
            #expect(recipients.first { $0.username == "yanis.epl" }?.reads == 2)
            #expect(recipients.allSatisfy { $0.fields == ["birth_date", "last_name"] })
            // Listed once: asked again, the same list.
            let again = try await fixture.dsar.transaction { connection in try rectifications.listRecipients(number: request.number, on: connection) }
            #expect(again.first?.recipients == recipients)

            let history = try await fixture.admin.perform { connection in try fixture.store.history(.patient, id: patient.id, on: connection) }
            #expect(history.map(\.version) == [1, 2] && history[1].changedBy.hasPrefix("dpo: subject request"))

            try await fixture.sequence()
            let access = try await fixture.open(.access, patient: try await fixture.admin.perform { try fixture.store.patient(patient.id, on: $0) })
            let pack = try await fixture.dsar.transaction(isolation: .repeatableRead) { connection in
                try AccessPackWorkflow(register: fixture.register(), ring: fixture.ring).review(number: access.number, staffNames: false, on: connection)
            }
            let versions = try #require(pack.table("care.record_versions")?.rows.filter { $0.columns["record_type"]?.value == "patient" }.sorted { $0.columns["version"]!.value! < $1.columns["version"]!.value! })
            #expect(versions.count == 2)
            #expect(versions[0].columns["snapshot"]?.value?.contains("\"last_name\":\"Dupont\"") == true)
            #expect(versions[1].columns["snapshot"]?.value?.contains("\"last_name\":\"Dupond\"") == true)
            #expect(versions[1].columns["changed_by"]?.value == nil && versions[1].columns["subject_request_id"]?.source == .withheld)
            #expect(pack.table("care.patients")?.rows.first?.columns["last_name"]?.value == "Dupond")
            let given = try #require(pack.table("dsar.rectifications")?.rows.first?.columns["recipients"]?.value)
            #expect(!given.contains("dominique.sau") && given.contains("\"staff\":\"staff-") && given.contains("\"team\":\"sau\""))
        }
    }

    @Test("Bad input gets a clear error and writes nothing: unknown patient, no identity check, a pack twice, a deadline past, too early, a pseudonymised patient")
    func badInput() async throws {
        try await DSARFixture.with("dsar_bad") { fixture in
            let patient = try await fixture.createPatient("Bernard", "Alice", "1985-07-09")
            try await fixture.read(patient.id, by: "camille.sau")
            try await fixture.sequence()
            let register = fixture.register()
            let workflow = AccessPackWorkflow(register: register, ring: fixture.ring)
            func expectNothingWritten(_ code: SubjectRequestError.Code, _ label: String, _ body: @escaping @Sendable (isolated Connection) throws -> Void) async throws {
                let before = try await fixture.counts()
                let error = await #expect(throws: SubjectRequestError.self, "\(label)") { try await fixture.dsar.transaction { connection in try body(connection) } }
                #expect(error?.code == code, "\(label): \(String(describing: error))")
                #expect(try await fixture.counts() == before, "\(label): nothing half-written")
            }
            try await expectNothingWritten(.unknownPatient, "unknown patient") { connection in
                _ = try register.open(
                    NewRequest(kind: .access, subject: .patientName(lastName: "Bernard", firstName: "Alicia", birthDate: "1985-07-09"), capacity: .patient, requesterName: "A. B.", receivedAt: Date()),
                    on: connection)
            }
            try await expectNothingWritten(.unknownPatient, "unknown patient id") { connection in
                _ = try register.open(NewRequest(kind: .access, subject: .patientID(UUID()), capacity: .patient, requesterName: "A. B.", receivedAt: Date()), on: connection)
            }
            try await expectNothingWritten(.invalidArgument, "malformed birth date") { connection in
                _ = try register.open(
                    NewRequest(kind: .access, subject: .patientName(lastName: "Bernard", firstName: "Alice", birthDate: "1985-02-30"), capacity: .patient, requesterName: "A. B.", receivedAt: Date()),
                    on: connection)
            }
            try await expectNothingWritten(.invalidDate, "received in the future") { connection in
                _ = try register.open(
                    NewRequest(kind: .access, subject: .patientID(patient.id), capacity: .patient, requesterName: "A. B.", receivedAt: Date().addingTimeInterval(86400)),
                    on: connection)
            }
            try await expectNothingWritten(.deadlinePast, "a deadline already past") { connection in
                _ = try register.open(
                    NewRequest(kind: .erasure, subject: .patientID(patient.id), capacity: .patient, requesterName: "A. B.", receivedAt: Date().addingTimeInterval(-40 * 86400)),
                    on: connection)
            }
            try await expectNothingWritten(.invalidArgument, "a representative without whom they represent") { connection in
                _ = try register.open(
                    NewRequest(kind: .access, subject: .patientID(patient.id), capacity: .legalRepresentative, requesterName: "A. B.", receivedAt: Date()), on: connection)
            }
            // Acknowledged, the late request is registered and says so.
            let late = try await fixture.dsar.transaction { connection in
                try register.open(
                    NewRequest(
                        kind: .erasure, subject: .patientID(patient.id), capacity: .patient, requesterName: "A. B.", receivedAt: Date().addingTimeInterval(-40 * 86400),
                        acknowledgeLate: true), on: connection)
            }
            #expect(late.lateAcknowledged)
            try await expectNothingWritten(.extensionTooLate, "an extension after the first month") { connection in
                _ = try register.extend(number: late.number, noticeOn: CivilDate.on(Date(), in: DSARFixture.timeZone), reasons: "complexité", on: connection)
            }

            let unchecked = try await fixture.open(.access, patient: patient, identityChecked: false)
            try await expectNothingWritten(.identityNotChecked, "approval without identity check") { connection in
                _ = try workflow.approve(number: unchecked.number, staffNames: false, on: connection)
            }
            try await expectNothingWritten(.identityNotChecked, "granted without identity check") { connection in
                _ = try register.close(number: unchecked.number, outcome: .granted, on: connection)
            }
            try await expectNothingWritten(.packNotApproved, "release before approval") { connection in
                _ = try workflow.release(number: unchecked.number, to: .passphrase("correct horse battery staple"), path: "/nonexistent/never", establishment: "x", on: connection)
            }

            // Too early: the 48 hours of reflection (CSP L1111-7).
            let fresh = try await fixture.open(.access, patient: patient, daysAgo: 0.5)
            _ = try await fixture.dsar.transaction(isolation: .repeatableRead) { connection in try workflow.approve(number: fresh.number, staffNames: false, on: connection) }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsar-bad-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try await expectNothingWritten(.tooEarly, "before 48 hours") { connection in
                _ = try workflow.release(number: fresh.number, to: .passphrase("correct horse battery staple"), path: "\(directory)/early.age", establishment: "x", on: connection)
            }
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/early.age"))

            // A pack released twice.
            let ready = try await fixture.open(.access, patient: patient)
            _ = try await fixture.dsar.transaction(isolation: .repeatableRead) { connection in try workflow.approve(number: ready.number, staffNames: false, on: connection) }
            let first = try await fixture.dsar.transaction { connection in
                try workflow.release(number: ready.number, to: .passphrase("correct horse battery staple"), path: "\(directory)/first.age", establishment: "x", on: connection)
            }
            let decrypted = try SealedArchive.read("\(directory)/first.age", identities: [AgePassphrase("correct horse battery staple")])
            #expect(decrypted["dossier.html"] != nil)
            try await expectNothingWritten(.packAlreadyReleased, "a pack requested twice") { connection in
                _ = try workflow.release(number: ready.number, to: .passphrase("correct horse battery staple"), path: "\(directory)/second.age", establishment: "x", on: connection)
            }
            try await expectNothingWritten(.packAlreadyReleased, "approval after release") { connection in
                _ = try workflow.approve(number: ready.number, staffNames: false, on: connection)
            }
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/second.age"))
            let stored = try await fixture.admin.query("SELECT content IS NULL AS dropped, encode(sealed_sha256, 'hex') AS sealed FROM dsar.packs WHERE request_id = $1", [ready.id]).rows[0]
            #expect(try stored.bool("dropped") && "sha256:" + (try stored.string("sealed")) == first.file.sha256)
            try await expectNothingWritten(.invalidArgument, "a weak passphrase") { connection in
                _ = try workflow.approve(number: fresh.number, staffNames: false, on: connection)
                _ = try SealedArchive.write([], to: "\(directory)/weak.age", for: .passphrase("short"))
            }

            // A patient pseudonymised by retention (the care store's own pseudonymisation, as osmose-retentiond runs it).
            let pseudonymised = try await fixture.admin.perform { connection in
                try fixture.store.pseudonymise([patient.id], at: Date(), pseudonymiser: Pseudonymiser(ring: fixture.ring), on: connection)
            }
            #expect(pseudonymised.map(\.patientID) == [patient.id])
            try await expectNothingWritten(.patientPseudonymised, "a pseudonymised patient, by id") { connection in
                _ = try register.open(NewRequest(kind: .access, subject: .patientID(patient.id), capacity: .patient, requesterName: "A. B.", receivedAt: Date()), on: connection)
            }
            try await expectNothingWritten(.patientPseudonymised, "a request whose patient was pseudonymised since") { connection in
                _ = try workflow.approve(number: fresh.number, staffNames: false, on: connection)
            }
        }
    }

    @Test("The evidence file chains every step, each anchored in the signed journal; an altered step is named")
    func evidenceFile() async throws {
        try await DSARFixture.with("dsar_evidence") { fixture in
            let patient = try await fixture.createPatient("Petit", "Jules", "2001-01-02")
            _ = try await fixture.createEpisode(patient.id, reason: "Entorse")
            try await fixture.sequence()
            let request = try await fixture.open(.access, patient: patient)
            let register = fixture.register()
            let workflow = AccessPackWorkflow(register: register, ring: fixture.ring)
            _ = try await fixture.dsar.transaction { connection in try register.addNote(number: request.number, "Demande reçue par courrier recommandé", on: connection) }
            _ = try await fixture.dsar.transaction(isolation: .repeatableRead) { connection in try workflow.approve(number: request.number, staffNames: false, on: connection) }
            let identity = try AgeIdentity.generate()
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("dsar-ev-\(UUID().uuidString.prefix(8)).age").path
            defer { unlink(path) }
            _ = try await fixture.dsar.transaction { connection in
                try workflow.release(number: request.number, to: .recipient(identity.recipient.encoded), path: path, establishment: "x", on: connection)
            }
            _ = try await fixture.dsar.transaction { connection in try workflow.recordDelivery(number: request.number, method: .post, at: Date(), on: connection) }
            _ = try await fixture.dsar.transaction { connection in try register.close(number: request.number, outcome: .granted, on: connection) }
            try await fixture.sequence()
            let document = try await fixture.dsar.transaction(isolation: .repeatableRead) { connection in
                try EvidenceFiles(register: register).document(number: request.number, on: connection)
            }
            #expect(document.problems.isEmpty, "\(document.problems)")
            #expect(
                document.steps.map(\.kind) == ["opened", "deadlines-computed", "identity-checked", "note-added", "pack-approved", "pack-released", "pack-delivered", "closed"])
            #expect(document.anchors.allSatisfy { $0.sequence != nil && $0.matches }, "every step is in the journal with its hash")
            #expect(document.pack?["sealed_file"] != nil && document.pack?["delivery_method"] == "post")
            #expect(document.notes.first?.text == "Demande reçue par courrier recommandé")
            #expect(document.request.identityCheck?.documents == "carte d'identité n° 123456789012")
            let json = String(decoding: try EvidenceFiles.json(document), as: UTF8.self)
            #expect(json.contains("\"format\" : \"osmose.subject-request-evidence.v1\""))

            // The owner, triggers off, alters a step: the chain names it.
            try await fixture.admin.execute("SET session_replication_role = replica")
            try await fixture.admin.query(
                "UPDATE dsar.steps SET body = replace(body, '\"kind\":\"closed\"', '\"kind\":\"opened\"'), kind = 'opened' WHERE request_id = $1 AND position = 8", [request.id])
            try await fixture.admin.execute("SET session_replication_role = origin")
            let checked = try await fixture.dsar.perform { connection in try EvidenceFiles(register: register).verify(number: request.number, on: connection) }
            #expect(checked.problems == ["step 8: its hash does not match its content"])
            // Without switching the triggers off, nobody may change a step.
            await #expect(throws: StoreError.self) { try await fixture.admin.query("DELETE FROM dsar.steps WHERE request_id = $1", [request.id]) }
            await #expect(throws: StoreError.self) { try await fixture.dsar.query("UPDATE dsar.steps SET actor = 'x' WHERE request_id = $1", [request.id]) }
        }
    }

    @Test("Erasure of health data is refused with its reasons and restriction offered; restriction set and lifted; a departed staff member's data erased, dry run first")
    func answersRestrictionAndStaff() async throws {
        try await DSARFixture.with("dsar_answers") { fixture in
            let patient = try await fixture.createPatient("Roux", "Marc", "1960-10-10")
            try await fixture.sequence()
            let register = fixture.register()
            let erasure = try await fixture.open(.erasure, patient: patient)
            let (answer, letter) = try await fixture.dsar.transaction { connection in
                try Answers(register: register, controller: .public).answer(number: erasure.number, decision: nil, reasons: nil, on: connection)
            }
            #expect(answer.outcome == .refused && letter.contains("R1112-7") && letter.contains("17(3)(c)") && letter.contains("CNIL"))
            let overrule = await #expect(throws: SubjectRequestError.self) {
                _ = try await fixture.dsar.transaction { connection in
                    try Answers(register: register, controller: .public).answer(number: erasure.number, decision: .granted, reasons: nil, on: connection)
                }
            }
            #expect(overrule?.code == .invalidArgument)
            // The restriction offered, accepted.
            let restriction = try await fixture.dsar.transaction { connection in try Restrictions(register: register).restrict(number: erasure.number, on: connection) }
            #expect(try await fixture.admin.perform { try PatientRestrictions.restricted(among: [patient.id], on: $0) } == [patient.id])
            let twice = await #expect(throws: SubjectRequestError.self) {
                _ = try await fixture.dsar.transaction { connection in try Restrictions(register: register).restrict(number: erasure.number, on: connection) }
            }
            #expect(twice?.code == .notReady)
            _ = try await fixture.dsar.transaction { connection in try register.close(number: erasure.number, outcome: .refused, on: connection) }
            let lifted = try await fixture.dsar.transaction { connection in
                try Restrictions(register: register).lift(number: erasure.number, reason: .requestWithdrawn, on: connection)
            }
            #expect(lifted.id == restriction.id)
            #expect(try await fixture.admin.perform { try PatientRestrictions.restricted(among: [patient.id], on: $0) }.isEmpty)
            try await fixture.sequence()
            let events = try await fixture.admin.perform { connection in
                try JournalSearch(patientID: patient.id, action: .subjectRequest, limit: 1000).entries(on: connection).compactMap(\.reason)
            }
            #expect(events.contains { $0.hasPrefix("dsar.restricted sha256:") } && events.contains { $0.hasPrefix("dsar.restriction-lifted sha256:") })

            // A staff member's request about their own account.
            let staff = fixture.user("leo.epl")
            try await fixture.admin.query(
                "INSERT INTO care.sessions (token_hash, user_id, expires_at) VALUES (sha256('leo'), $1, clock_timestamp() + interval '1 hour')", [staff.userID])
            let request = try await fixture.dsar.transaction { connection in
                try register.open(
                    NewRequest(
                        kind: .erasure, subject: .staff(username: "leo.epl"), capacity: .staffMember, requesterName: "Léo", receivedAt: Date(),
                        identityCheck: IdentityCheck(checkedBy: "rh", checkedAt: Date(), documents: "badge")), on: connection)
            }
            #expect(request.healthInformation == false && request.deadlines.map(\.rule) == [.gdprOneMonth])
            let answers = Answers(register: register, controller: .public)
            let active = await #expect(throws: SubjectRequestError.self) {
                _ = try await fixture.dsar.transaction { connection in try answers.eraseStaffData(number: request.number, dryRun: true, on: connection) }
            }
            #expect(active?.code == .staffActive)
            try await fixture.admin.query("UPDATE care.users SET disabled = true WHERE id = $1", [staff.userID])
            let before = try await fixture.counts()
            let dry = try await fixture.dsar.transaction { connection in try answers.eraseStaffData(number: request.number, dryRun: true, on: connection) }
            #expect(!dry.carriedOut && dry.sessionsEnded == 1)
            #expect(try await fixture.counts() == before, "a dry run changes nothing")
            #expect(try await fixture.admin.query("SELECT display_name FROM care.users WHERE id = $1", [staff.userID]).rows[0].string("display_name") == "Display leo.epl")
            let done = try await fixture.dsar.transaction { connection in try answers.eraseStaffData(number: request.number, dryRun: false, on: connection) }
            #expect(done.carriedOut)
            let account = try await fixture.admin.query("SELECT username, display_name, password_hash FROM care.users WHERE id = $1", [staff.userID]).rows[0]
            #expect(try account.string("username") == "leo.epl" && (try account.string("display_name")).hasPrefix("compte effacé") && (try account.string("password_hash")).hasPrefix("!erased"))
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM care.sessions WHERE user_id = $1 AND revoked_at IS NULL", [staff.userID]).rows[0].int("n") == 0)
        }
    }

    @Test("The daily check reports requests nearing and past their deadline and the openings of restricted records, journals them, marks them reported")
    func deadlineWatch() async throws {
        try await DSARFixture.with("dsar_watch") { fixture in
            let patient = try await fixture.createPatient("Blanc", "Rose", "1950-01-01")
            let register = fixture.register()
            let late = try await fixture.dsar.transaction { connection in
                try register.open(
                    NewRequest(kind: .objection, subject: .patientID(patient.id), capacity: .patient, requesterName: "Rose", receivedAt: Date().addingTimeInterval(-35 * 86400), acknowledgeLate: true),
                    on: connection)
            }
            let nearing = try await fixture.open(.access, patient: patient, daysAgo: 6)
            let onTime = try await fixture.open(.erasure, patient: patient, daysAgo: 1)
            let restricted = try await fixture.dsar.transaction { connection in try Restrictions(register: register).restrict(number: onTime.number, on: connection) }
            try await fixture.admin.transaction { connection in
                try PatientRestrictions.recordOverride(restricted, by: fixture.user("camille.sau"), ground: .consent, careRequestID: "care-7", endpoint: "patient read", on: connection)
            }
            let watch = DeadlineWatch(register: fixture.register(ring: nil, actor: .daemon(.dsard)), warnDays: 3)
            let report = try await fixture.dsar.transaction { connection in
                let report = try watch.check(on: connection)
                try watch.record(report, on: connection)
                return report
            }
            #expect(report.past.map(\.number) == [late.number] && report.nearing.map(\.number) == [nearing.number])
            #expect(report.overrides.map(\.careRequestID) == ["care-7"] && report.overrides.first?.username == "camille.sau")
            #expect(report.text.contains("EN RETARD  demande n° \(late.number)") && !report.text.contains("Rose") && !report.text.contains("Blanc"))
            let again = try await fixture.dsar.transaction { connection in try watch.check(on: connection) }
            #expect(again.overrides.isEmpty, "reported once")
            let reasons = try await fixture.admin.query("SELECT reason FROM journal.intake WHERE source = 'osmose-dsard' ORDER BY id").rows.map { try $0.string("reason") }
            #expect(reasons.contains { $0.hasPrefix("dsar.deadline.past") } && reasons.contains { $0.hasPrefix("dsar.deadline.near") } && reasons.contains { $0.hasPrefix("dsar.restriction-override.reported consent") })

            // The daemon's service does the same and mails the report through a sendmail-compatible program.
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsar-mail-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let program = "\(directory)/sendmail"
            try "#!/bin/sh\ncat > \(directory)/message\n".write(toFile: program, atomically: true, encoding: .utf8)
            chmod(program, 0o755)
            let service = DeadlineWatchService(
                connectionString: "\(fixture.database.connectionString) user=osmose_dsar", timeZone: DSARFixture.timeZone, warnDays: 3, interval: .seconds(3600),
                // Run through /bin/sh: exec'ing a script this process has just written fails now and
                // then with ETXTBSY (a child another test forks meanwhile inherits its open write
                // descriptor), and the report was then not mailed (seen in a loaded whole-suite run).
                mail: MailCommand(command: ["/bin/sh", program, "-t"], to: ["dpo@chu.example"], from: "osmose-dsard@chu.example"), logger: testLogger,
                notifier: .init(environment: [:]))
            let daily = try #require(await service.checkOnce())
            #expect(daily.past.count == 1)
            let message = try String(contentsOfFile: "\(directory)/message", encoding: .utf8)
            #expect(message.contains("To: dpo@chu.example\r\n") && message.contains("EN RETARD  demande n° \(late.number)"))
        }
    }

    @Test("osmose-dsard's queue: a pack approved and released by the worker with the master key, its output sealed, a failure recorded")
    func packQueue() async throws {
        try await DSARFixture.with("dsar_queue") { fixture in
            let patient = try await fixture.createPatient("Noir", "Eva", "1999-09-09")
            try await fixture.read(patient.id, by: "camille.sau")
            try await fixture.sequence()
            let request = try await fixture.open(.access, patient: patient)
            let identity = try AgeIdentity.generate()
            let worker = PackJobWorker(
                connectionString: "\(fixture.database.connectionString) user=osmose_dsar", ring: fixture.ring,
                settings: PackSettings(timeZone: DSARFixture.timeZone, establishment: "CHU de test"), scratch: NSTemporaryDirectory(), logger: testLogger)
            var jobs: [UUID] = []
            for operation in [
                PackOperation.approve(number: request.number, staffNames: false), .release(number: request.number, recipient: identity.recipient.encoded),
                .release(number: request.number, recipient: identity.recipient.encoded),
            ] {
                jobs.append(try await fixture.dsar.transaction { connection in try PackJobs.enqueue(operation, requestedBy: "dpo.test@host via osmosectl", on: connection) })
            }
            while try await worker.workOne(on: fixture.dsar) {}
            let queued = jobs
            let statuses = try await fixture.dsar.perform { connection in try queued.map { try PackJobs.status($0, on: connection) } }
            #expect(statuses.map(\.state) == ["done", "done", "failed"])
            #expect(statuses[2].error?.contains("dsar.pack_already_released") == true)
            let sealed = try #require(statuses[1].result?.sealed)
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("dsar-q-\(UUID().uuidString.prefix(8)).age").path
            defer { unlink(path) }
            #expect(FileManager.default.createFile(atPath: path, contents: Data(sealed)))
            let members = try SealedArchive.read(path, identities: [identity])
            #expect(String(decoding: members["dossier.html"]!, as: UTF8.self).contains("CHU de test"))
            #expect(sealed.starts(with: Array("age-encryption.org/v1".utf8)), "never clear text in the database")
        }
    }
}
