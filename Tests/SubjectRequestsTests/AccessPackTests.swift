import Age
import CareRecords
import Cryptography
import Foundation
import Journal
import Keyring
import Store
import SubjectRequests
import Testing
import TestSupport

@Suite("Access packs: complete, about one patient only, every access proven")
struct AccessPackTests {
    /// A patient with a full record, and look-alikes (same birth date, near names) with records of their own.
    struct Seeded {
        let target: PatientView
        let others: [PatientView]
        /// Texts written only in the others' records.
        let othersTexts: [String]
    }

    static func seed(_ fixture: DSARFixture) async throws -> Seeded {
        let target = try await fixture.createPatient("Martin", "Léa", "1990-05-17", ins: "290057512345669")
        let others = [
            try await fixture.createPatient("Martin", "Léna", "1990-05-17"),
            try await fixture.createPatient("Martine", "Léa", "1990-05-17"),
            try await fixture.createPatient("Martin", "Léa", "1990-05-17", ins: "290057512345768"),
        ]
        let episode = try await fixture.createEpisode(target.id, reason: "Douleur thoracique")
        _ = try await fixture.createTransmission(episode, body: "Patiente calme, sa sœur Claire Dubois est passée", addressedTo: "epl")
        _ = try await fixture.createTransmission(episode, body: "Avis psychiatrique rendu", by: "yanis.epl")
        try await fixture.updateEpisode(episode, activity: "Surveillance scope")
        let second = try await fixture.createEpisode(target.id, reason: "Contrôle")
        _ = try await fixture.createTransmission(second, body: "Sortie organisée")
        var othersTexts: [String] = []
        for (index, other) in others.enumerated() {
            let reason = "Motif propre à l'autre patient \(index)"
            let episode = try await fixture.createEpisode(other.id, reason: reason)
            let body = "Transmission propre à l'autre patient \(index)"
            _ = try await fixture.createTransmission(episode, body: body, addressedTo: "epl")
            othersTexts += [reason, body]
            try await fixture.read(other.id, by: "yanis.epl")
        }
        for name in ["camille.sau", "yanis.epl", "dominique.sau"] { try await fixture.read(target.id, by: name) }
        try await fixture.read(target.id, by: "leo.epl", result: .denied)
        try await fixture.sequence()
        return Seeded(target: target, others: others, othersTexts: othersTexts)
    }

    @Test("Matching goes through the blind index: look-alikes are told apart, several matches are refused until one is chosen")
    func matching() async throws {
        try await DSARFixture.with("dsar_matching") { fixture in
            let seeded = try await Self.seed(fixture)
            let register = fixture.register()
            let before = try await fixture.counts()
            let ambiguous = await #expect(throws: SubjectRequestError.self) {
                _ = try await fixture.dsar.transaction { connection in
                    try register.open(
                        NewRequest(
                            kind: .access, subject: .patientName(lastName: "MARTIN", firstName: "lea", birthDate: "1990-05-17"), capacity: .patient,
                            requesterName: "Léa Martin", receivedAt: Date()), on: connection)
                }
            }
            #expect(ambiguous?.code == .ambiguousPatient)
            #expect(try await fixture.counts() == before, "nothing half-written")
            let byINS = try await fixture.dsar.transaction { connection in
                try register.open(
                    NewRequest(kind: .access, subject: .patientINS("290057512345669"), capacity: .patient, requesterName: "Léa Martin", receivedAt: Date()),
                    on: connection)
            }
            #expect(byINS.patientID == seeded.target.id)
            let chosen = try await fixture.open(.access, patient: seeded.target)
            #expect(chosen.patientID == seeded.target.id && chosen.requesterName == "Léa Martin")
            let unknown = await #expect(throws: SubjectRequestError.self) {
                _ = try await fixture.dsar.transaction { connection in
                    try register.open(
                        NewRequest(
                            kind: .access, subject: .patientName(lastName: "Martin", firstName: "Lucie", birthDate: "1990-05-17"), capacity: .patient,
                            requesterName: "Lucie Martin", receivedAt: Date()), on: connection)
                }
            }
            #expect(unknown?.code == .unknownPatient)
        }
    }

    /// The rows about `patient`, table by table, found by walking the database's
    /// foreign keys from `care.patients`, plus the columns that name a patient or a
    /// record without a foreign key (the versions' `record_id`, the journal's `patient_id`).
    static func rowsAbout(_ patient: UUID, on connection: Connection) async throws -> [String: [[String: Any]]] {
        let edges = try await connection.query(
            """
            SELECT c.confrelid::regclass::text AS parent, pa.attname::text AS parent_column, c.conrelid::regclass::text AS child, a.attname::text AS child_column
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
            WHERE c.contype = 'f' AND cardinality(c.conkey) = 1
            """
        ).rows.map { (try $0.string("parent"), try $0.string("parent_column"), try $0.string("child"), try $0.string("child_column")) }
        var found: [String: [String: [String: Any]]] = [:]
        func fetch(_ table: String, where condition: String, _ values: [String]) async throws -> Bool {
            guard !values.isEmpty else { return false }
            let list = "{" + values.joined(separator: ",") + "}"
            var grew = false
            for row in try await connection.query("SELECT to_jsonb(t)::text AS row FROM \(table) t WHERE \(condition) = ANY($1::text[])", [list]).rows {
                let object = try JSONSerialization.jsonObject(with: Data(try row.string("row").utf8)) as! [String: Any]
                let key = try String(decoding: JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
                if found[table, default: [:]][key] == nil {
                    found[table, default: [:]][key] = object
                    grew = true
                }
            }
            return grew
        }
        _ = try await fetch("care.patients", where: "id::text", [patient.uuidString.lowercased()])
        _ = try await fetch("journal.entries", where: "patient_id::text", [patient.uuidString.lowercased()])
        var grew = true
        while grew {
            grew = false
            for (parent, parentColumn, child, childColumn) in edges {
                let values = (found[parent] ?? [:]).values.compactMap { $0[parentColumn].map { "\($0)" } }
                if try await fetch(child, where: "\"\(childColumn)\"::text", Array(Set(values))) { grew = true }
            }
            let records = ["care.patients", "care.episodes", "care.transmissions"].flatMap { (found[$0] ?? [:]).values.compactMap { $0["id"] as? String } }
            if try await fetch("care.record_versions", where: "record_id::text", records) { grew = true }
        }
        return found.mapValues { Array($0.values) }
    }

    @Test("Completeness: a walk of the schema finds every row about the patient in the pack, and nothing about look-alikes")
    func completeness() async throws {
        try await DSARFixture.with("dsar_complete") { fixture in
            let seeded = try await Self.seed(fixture)
            // Earlier requests leave their own rows: a rectification, a restriction with an opening on a ground of art. 18(2), a note and a document.
            let rectification = try await fixture.open(.rectification, patient: seeded.target, daysAgo: 20)
            let register = fixture.register()
            _ = try await fixture.dsar.transaction { connection in
                try Rectifications(register: register, ring: fixture.ring).rectify(number: rectification.number, values: ["first_name": "Léah"], on: connection)
            }
            let restriction = try await fixture.open(.restriction, patient: try await fixture.admin.perform { try fixture.store.patient(seeded.target.id, on: $0) }, daysAgo: 10)
            let restricted = try await fixture.dsar.transaction { connection in try Restrictions(register: register).restrict(number: restriction.number, on: connection) }
            try await fixture.admin.transaction { connection in
                try PatientRestrictions.recordOverride(
                    restricted, by: fixture.user("camille.sau"), ground: .protectionOfOthers, careRequestID: "care-1", endpoint: "patient read", on: connection)
            }
            _ = try await fixture.dsar.transaction { connection in try Restrictions(register: register).lift(number: restriction.number, reason: .accuracyVerified, on: connection) }
            _ = try await fixture.dsar.transaction { connection in try register.addNote(number: restriction.number, "Appel de la patiente le 3", on: connection) }
            _ = try await fixture.dsar.transaction { connection in
                try register.attach(number: restriction.number, fileName: "courrier.pdf", mediaType: "application/pdf", content: Array("%PDF-1.4 lettre".utf8), on: connection)
            }
            try await fixture.sequence()
            let current = try await fixture.admin.perform { try fixture.store.patient(seeded.target.id, on: $0) }
            let access = try await fixture.open(.access, patient: current)
            let workflow = AccessPackWorkflow(register: register, ring: fixture.ring)
            let pack = try await fixture.dsar.transaction(isolation: .repeatableRead) { connection in
                try workflow.review(number: access.number, staffNames: false, on: connection)
            }

            let walked = try await Self.rowsAbout(seeded.target.id, on: fixture.admin)
            #expect(walked.keys.contains("dsar.rectifications") && walked.keys.contains("care.restriction_overrides") && walked.keys.contains("care.record_versions"))
            for (table, rows) in walked {
                if table == "journal.entries" {
                    let covered = rows.compactMap { ($0["seq"] as? NSNumber)?.uint64Value }.filter { $0 < pack.journal.treeSize }.sorted()
                    #expect(pack.consultations.map(\.sequence) == covered, "every access the checkpoint covers")
                    continue
                }
                if let reason = PatientRecordSources.excluded[table] {
                    #expect(!reason.isEmpty)
                    continue
                }
                let source = try #require(PatientRecordSources.all.first { $0.table == table }, "\(table) holds rows about the patient and is neither in the pack nor excluded")
                let expected = Set(rows.map { row in source.keyColumns.map { "\(row[$0] ?? "")" }.joined(separator: "/") })
                let given = Set(pack.table(table)?.rows.map(\.key) ?? [])
                #expect(given == expected, "\(table): the pack holds \(given.count) rows, the walk found \(expected.count)")
            }
            for source in PatientRecordSources.all where !(pack.table(source.table)?.rows.isEmpty ?? true) {
                #expect(walked[source.table] != nil, "\(source.table) in the pack but not found by the walk")
            }
            // Every registered encrypted column of every row given is decrypted (or withheld for a reason).
            let registry = EncryptedColumnRegistry.care
            for table in pack.tables {
                for column in registry.columns(of: table.table) {
                    for row in table.rows {
                        let cell = try #require(row.columns[column.column], "\(column.name) of \(row.key)")
                        let withheld = PatientRecordSources.withheld.contains { $0.table == table.table && $0.column == column.column }
                        #expect(cell.value == nil || cell.source == (withheld ? .withheld : .decrypted) || cell.source == .redacted, "\(column.name) of \(row.key): \(cell.source)")
                    }
                }
            }
            #expect(pack.table("care.patients")?.rows.first?.columns["last_name"]?.value == "Martin")
            #expect(pack.table("care.patients")?.rows.first?.columns["ins"]?.value == "290057512345669")
            #expect(pack.table("care.transmissions")?.rows.contains { $0.columns["body"]?.value == "Avis psychiatrique rendu" } == true)
            #expect(pack.table("dsar.documents")?.rows.first?.columns["content"]?.value == "%PDF-1.4 lettre")

            // Nothing about anyone else: no other patient's id, name or text anywhere in any form.
            let json = String(decoding: try pack.canonicalJSON(), as: UTF8.self)
            let html = AccessPackHTML.render(pack)
            let fhir = String(decoding: try AccessPackFHIR.bundle(pack), as: UTF8.self)
            for form in [json, html, fhir] {
                for other in seeded.others { #expect(!form.contains(other.id.uuidString.lowercased())) }
                for text in seeded.othersTexts + ["Léna", "Martine", "290057512345768"] { #expect(!form.contains(text), "\(text)") }
            }
            // Staff by role and team only: no login or display name, in the rows, the snapshots or the accesses.
            for name in fixture.users.keys { #expect(!json.contains(name) && !html.contains(name) && !fhir.contains(name), "\(name)") }
            #expect(!json.contains("dpo.test"))
            #expect(pack.staff.allSatisfy { $0.name == nil } && pack.staff.contains { $0.role == "agent" && $0.team == "epl" })
            #expect(html.contains("Accès à votre dossier") && html.contains("<html lang=\"fr\">") && !html.contains("<script"))
            #expect(fhir.contains("\"resourceType\" : \"Patient\"") && fhir.contains("AuditEvent") && fhir.contains("Encounter") && fhir.contains("Communication"))
        }
    }

    @Test("A third party named in a note is redacted before release: gone from every form and snapshot, recorded encrypted, a step of the evidence file; a passage not in the draft is refused and writes nothing")
    func redaction() async throws {
        try await DSARFixture.with("dsar_redaction") { fixture in
            let seeded = try await Self.seed(fixture)
            let request = try await fixture.open(.access, patient: seeded.target)
            let workflow = AccessPackWorkflow(register: fixture.register(), ring: fixture.ring)
            let draft = try await fixture.dsar.transaction(isolation: .repeatableRead) { connection in
                try workflow.review(number: request.number, staffNames: false, on: connection)
            }
            let named = try #require(draft.table("care.transmissions")?.rows.first { $0.columns["body"]?.value?.contains("Claire Dubois") == true })
            let snapshots = draft.table("care.record_versions")?.rows.filter { $0.columns["record_id"]?.value == named.key } ?? []
            #expect(snapshots.contains { $0.columns["snapshot"]?.value?.contains("Claire Dubois") == true }, "the version history holds the name too")

            let before = try await fixture.counts()
            let absent = await #expect(throws: SubjectRequestError.self) {
                _ = try await fixture.dsar.transaction { connection in
                    try workflow.redact(
                        number: request.number, Redaction(table: "care.transmissions", row: named.key, column: "body", text: "Paul Dubois", reason: .thirdParty),
                        on: connection)
                }
            }
            #expect(absent?.code == .redactionNotFound)
            #expect(try await fixture.counts() == before, "nothing written for a passage not in the draft")

            // The row key as the care API's JSON spells it (upper case) names the same row.
            _ = try await fixture.dsar.transaction { connection in
                try workflow.redact(
                    number: request.number, Redaction(table: "care.transmissions", row: named.key.uppercased(), column: "body", text: "Claire Dubois", reason: .thirdParty),
                    on: connection)
            }
            let stored = try await fixture.admin.query("SELECT row_id, removed_text FROM dsar.redactions WHERE request_id = $1", [request.id]).rows
            #expect(stored.count == 1)
            #expect(try stored[0].string("row_id") == named.key)
            #expect(Data(try stored[0].bytes("removed_text")).range(of: Data("Claire Dubois".utf8)) == nil, "the removed passage is stored encrypted")

            let approved = try await fixture.dsar.transaction(isolation: .repeatableRead) { connection in
                try workflow.approve(number: request.number, staffNames: false, on: connection)
            }
            #expect(approved.redactions == 1)
            let identity = try AgeIdentity.generate()
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("dsar-redaction-\(UUID().uuidString.prefix(8)).age").path
            defer { unlink(path) }
            _ = try await fixture.dsar.transaction { connection in
                try workflow.release(number: request.number, to: .recipient(identity.recipient.encoded), path: path, establishment: "CHU de test", on: connection)
            }
            let members = try SealedArchive.read(path, identities: [identity])
            let pack = try AccessPack.decode(try #require(members["dossier.json"]))
            let cell = try #require(pack.table("care.transmissions")?.rows.first { $0.key == named.key }?.columns["body"])
            #expect(cell.source == .redacted && cell.value == "Patiente calme, sa sœur [passage occulté : tiers] est passée")
            #expect(pack.redactions.count == 1)
            for name in ["dossier.json", "dossier.html", "dossier.fhir.json"] {
                let text = String(decoding: try #require(members[name]), as: UTF8.self)
                #expect(!text.contains("Claire Dubois"), "\(name)")
                #expect(text.contains("Patiente calme"), "\(name): the rest of the note is given")
            }
            let steps = try await fixture.dsar.perform { connection in try EvidenceLog.steps(of: request.id, on: connection) }
            let redacted = try #require(steps.first { $0.kind == "redacted" })
            #expect(redacted.details["row"] == named.key && redacted.details["reason"] == "third-party" && redacted.details["text"]?.hasPrefix("sha256:") == true)
            #expect(!steps.map(\.body).joined().contains("Claire Dubois"), "the evidence file names the passage by its digest only")

            let late = await #expect(throws: SubjectRequestError.self) {
                _ = try await fixture.dsar.transaction { connection in
                    try workflow.redact(
                        number: request.number, Redaction(table: "care.transmissions", row: named.key, column: "body", text: "Patiente", reason: .thirdParty), on: connection)
                }
            }
            #expect(late?.code == .packAlreadyReleased)
        }
    }

    @Test("The pack's proofs, made in bulk, equal one proof at a time, in the caller's order, with repeats; an uncovered entry is refused")
    func bulkProofsEqualSingleProofs() async throws {
        try await DSARFixture.with("dsar_bulk_proofs") { fixture in
            _ = try await Self.seed(fixture)
            try await fixture.dsar.transaction(isolation: .repeatableRead) { connection in
                let checkpoint = try #require(try JournalDatabase.latestCheckpoint(on: connection))
                #expect(checkpoint.treeSize >= 20)
                // Scattered, out of order, with a repeat and both edges of the tree.
                let size = checkpoint.treeSize
                let sequences: [UInt64] = [size - 1, 3, 0, size / 2, 3, size - 2, 1]
                let bulk = try ConsultationProofs.inclusionProofs(of: sequences, against: checkpoint, on: connection)
                let reader = DatabaseTreeReader(connection: connection)
                let single = try sequences.map {
                    JournalFormats.tlogProof(index: $0, proof: try reader.inclusionProof(index: $0, size: size), checkpointNote: checkpoint.note)
                }
                #expect(bulk == single)
                #expect(bulk[0].contains("\nindex \(size - 1)\n"))
                let outside = #expect(throws: SubjectRequestError.self) {
                    _ = try ConsultationProofs.inclusionProofs(of: [0, size], against: checkpoint, on: connection)
                }
                #expect(outside?.code == .internalError)
            }
        }
    }

    @Test("Every access in a released pack carries an inclusion proof the independent C2SP verifier accepts, with and without staff names")
    func proofsVerifyIndependently() async throws {
        try await DSARFixture.with("dsar_proofs") { fixture in
            let seeded = try await Self.seed(fixture)
            let identity = try AgeIdentity.generate()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dsar-proofs-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let workflow = AccessPackWorkflow(register: fixture.register(), ring: fixture.ring)
            for staffNames in [false, true] {
                let request = try await fixture.open(.access, patient: seeded.target)
                let approved = try await fixture.dsar.transaction(isolation: .repeatableRead) { connection in
                    try workflow.approve(number: request.number, staffNames: staffNames, on: connection)
                }
                #expect(approved.consultations >= 8)
                let path = "\(directory)/pack-\(staffNames).age"
                let released = try await fixture.dsar.transaction { connection in
                    try workflow.release(number: request.number, to: .recipient(identity.recipient.encoded), path: path, establishment: "CHU de test", on: connection)
                }
                #expect(released.contentSHA256 == approved.contentSHA256)
                let members = try SealedArchive.read(path, identities: [identity])
                #expect(Set(members.keys).isSuperset(of: ["LISEZMOI.txt", "dossier.html", "dossier.json", "dossier.fhir.json", "journal/checkpoint", "journal/proofs", "journal/leaf-hashes"]))
                #expect((members["journal/entries"] != nil) == staffNames)
                #expect("sha256:" + hexString(SHA256.hash(members["dossier.json"]!)) == approved.contentSHA256)
                let pack = try AccessPack.decode(members["dossier.json"]!)
                #expect(staffNames ? pack.consultations.contains { $0.actorName == "yanis.epl" } : pack.consultations.allSatisfy { $0.actorName == nil && $0.entry == nil })
                let journal = "\(directory)/journal-\(staffNames)"
                for (name, bytes) in members where name.hasPrefix("journal/") {
                    try FileManager.default.createDirectory(atPath: journal, withIntermediateDirectories: true)
                    #expect(FileManager.default.createFile(atPath: "\(journal)/\(name.dropFirst(8))", contents: Data(bytes)))
                }
                var arguments = [repositoryRoot.appendingPathComponent("scripts/interop/verify-c2sp.py").path, "--vkey", fixture.signer.verifierKey.encoded, "--pack", journal]
                if staffNames { arguments += ["--export", journal] }
                let check = try await runProgram("/usr/bin/env", ["python3"] + arguments)
                #expect(check.status == 0, "\(check.standardOutput)\(check.standardError)")
                #expect(check.standardOutput.contains("ok pack: \(pack.consultations.count) accesses"), "\(check.standardOutput)")
                if staffNames { #expect(check.standardOutput.contains("ok export: \(pack.consultations.count) entries")) }
                // A tampered leaf is refused by the same verifier: its passes mean something.
                var leaves = try String(contentsOfFile: "\(journal)/leaf-hashes", encoding: .utf8).split(separator: "\n").map(String.init)
                let parts = leaves[0].split(separator: " ")
                leaves[0] = "\(parts[0]) \(Data(repeating: 7, count: 32).base64EncodedString())"
                try (leaves.joined(separator: "\n") + "\n").write(toFile: "\(journal)/leaf-hashes", atomically: true, encoding: .utf8)
                let tampered = try await runProgram("/usr/bin/env", ["python3", arguments[0], "--vkey", fixture.signer.verifierKey.encoded, "--pack", journal])
                #expect(tampered.status != 0 && tampered.standardOutput.contains("FAIL"))
            }
        }
    }
}

func hexString(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
