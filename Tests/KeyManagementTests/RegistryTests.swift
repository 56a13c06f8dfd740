import CareRecords
import Foundation
import Journal
import KeyManagement
import Keyring
import Settings
import Store
import Testing
import TestSupport

@Suite("Key rotation and the inventory read the registry of encrypted columns")
struct RegistryTests {
    @Test("A column and a search token added to the registry in a scratch schema are re-encrypted by rotation, and counted, without other changes")
    func scratchColumn() async throws {
        try await KeyFixture.with("keyrot_scratch", patients: 10) { fixture, _ in
            let admin = fixture.admin
            try await admin.execute(
                """
                CREATE SCHEMA scratch;
                CREATE TABLE scratch.notes (id uuid PRIMARY KEY, note bytea, name bytea NOT NULL, search_name bytea, blind_key_id integer);
                """)
            let note = EncryptedColumn(table: "scratch.notes", column: "note", role: .freeText, holds: "a scratch note")
            let name = EncryptedColumn(table: "scratch.notes", column: "name", role: .directIdentifier, holds: "a scratch name")
            let nameToken = SearchToken(column: "search_name", domain: "scratch.name", sources: [name])
            let registry = EncryptedColumnRegistry.care.adding(note).adding(name)
                .adding(SearchTokenSet(table: "scratch.notes", keyIDColumn: "blind_key_id", tokens: [nameToken]))

            // 90 rows written as a care service would, every third without a note.
            let ring = try await DataKeyRing.load(on: admin, master: fixture.master)
            let (oldColumnKey, oldBlindKey) = (try ring.primaryID(for: .column), try ring.primaryID(for: .blindIndex))
            var written: [UUID: (note: String?, name: String)] = [:]
            for index in 0..<90 { written[UUID()] = (index % 3 == 0 ? nil : "note \(index)", "Nom-\(KeyFixture.letters(index))") }
            try await admin.transaction { [written] connection in
                let cipher = ColumnCipher(ring: ring)
                for (id, values) in written {
                    try connection.query(
                        "INSERT INTO scratch.notes (id, note, name, search_name, blind_key_id) VALUES ($1, $2, $3, $4, $5)",
                        [
                            id, try values.note.map { try cipher.encrypt($0, for: note.location(rowID: id)) }, try cipher.encrypt(values.name, for: name.location(rowID: id)),
                            try nameToken.token([values.name], index: BlindIndex(ring: ring), keyID: oldBlindKey), oldBlindKey,
                        ])
                }
            }
            let before = try await admin.perform { try KeyRotation.census(registry: registry, on: $0) }
            #expect(before["scratch.notes.note"] == [oldColumnKey: 60] && before["scratch.notes.name"] == [oldColumnKey: 90])
            #expect(before["scratch.notes.search_tokens"] == [oldBlindKey: 90])

            var rotations: [RotationRecord] = []
            for purpose in [DataKeyPurpose.column, .blindIndex] {
                rotations.append(
                    try await admin.transaction { [master = fixture.master] connection in
                        try KeyRotation.start(
                            purpose: purpose, reason: "scratch", master: master, cryptoperiodDays: 365, actor: .operator("tests", role: .sysadmin),
                            registry: registry, on: connection)
                    })
            }
            let summary = try await RotationWorker(policy: RotationTests.policy, master: fixture.master, ring: ring, registry: registry, logger: testLogger)
                .run(on: admin) { false }
            #expect(summary.finished == 2)

            let (columnKey, blindKey) = (rotations[0].toKey, rotations[1].toKey)
            let after = try await admin.perform { try KeyRotation.census(registry: registry, on: $0) }
            #expect(after["scratch.notes.note"] == [columnKey: 60] && after["scratch.notes.name"] == [columnKey: 90], "\(after)")
            #expect(after["scratch.notes.search_tokens"] == [blindKey: 90])
            let inventory = try await admin.perform { try KeyInventory.status(policy: .defaults, registry: registry, on: $0) }
            #expect(inventory.first { $0.id == columnKey }?.values["scratch.notes.note"] == 60)
            for key in [oldColumnKey, oldBlindKey] {
                #expect(try await admin.query("SELECT state FROM keys.data_keys WHERE id = $1", [key]).rows[0].string("state") == "retired")
            }
            let rows = try await admin.query("SELECT id, note, name, search_name, blind_key_id FROM scratch.notes").rows
            let cipher = ColumnCipher(ring: ring)
            for row in rows {
                let id = try row.uuid("id")
                let values = try #require(written[id])
                #expect(try row.optionalBytes("note").map { try cipher.decryptString($0, at: note.location(rowID: id)) } == values.note)
                #expect(try cipher.decryptString(try row.bytes("name"), at: name.location(rowID: id)) == values.name)
                #expect(try row.int("blind_key_id") == blindKey)
                #expect(try row.bytes("search_name") == nameToken.token([values.name], index: BlindIndex(ring: ring), keyID: blindKey))
            }
        }
    }

    @Test("The registry is what the database guards: the primary-key-only triggers and osmose-keyd's grants name exactly its columns and tokens (care and dsar)")
    func matchesDatabase() async throws {
        try await KeyFixture.with("keyreg_schema", patients: 0) { fixture, _ in
            let registry = EncryptedColumnRegistry.care
            var checked: Set<String> = []
            for table in registry.tables {
                let name = String(table.split(separator: ".")[1])
                let body = try await fixture.admin.query(
                    "SELECT prosrc FROM pg_proc WHERE pronamespace = 'keys'::regnamespace AND proname = $1", ["primary_key_only_\(name)"]
                ).rows[0].string("prosrc")
                let guarded = body.matches(of: /IF NEW\.(\w+) IS NOT NULL/).map { "\(table).\($0.1)" }
                #expect(Set(guarded) == Set(registry.columns(of: table).map(\.name)), "\(table)")
                checked.formUnion(guarded)
            }
            #expect(checked == Set(registry.columns.map(\.name)))
            let granted = try await fixture.admin.query(
                """
                SELECT table_schema || '.' || table_name || '.' || column_name AS name FROM information_schema.column_privileges
                WHERE grantee = 'osmose_keyd' AND privilege_type = 'UPDATE' AND table_schema IN ('care', 'dsar')
                """
            ).rows.map { try $0.string("name") }
            let tokenColumns = registry.searchTokens.flatMap { set in (set.tokens.map(\.column) + [set.keyIDColumn]).map { "\(set.table).\($0)" } }
            #expect(Set(granted) == Set(registry.columns.map(\.name) + tokenColumns))
        }
    }

    @Test("The registry's tokens and bindings are the ones the care store writes")
    func matchesCareStore() async throws {
        try await KeyFixture.with("keyreg_care", patients: 9) { fixture, patients in
            let ring = try await DataKeyRing.load(on: fixture.admin, master: fixture.master)
            let (index, cipher) = (BlindIndex(ring: ring), ColumnCipher(ring: ring))
            for (id, view) in patients {
                let row = try await fixture.admin.query("SELECT last_name, search_name, search_ins, blind_key_id FROM care.patients WHERE id = $1", [id]).rows[0]
                let key = try row.int("blind_key_id")
                #expect(try cipher.decryptString(try row.bytes("last_name"), at: EncryptedColumn.patientLastName.location(rowID: id)) == view.lastName)
                #expect(try row.bytes("search_name") == SearchToken.patientNameBirth.token([view.lastName, view.firstName, view.birthDate].compactMap { $0 }, index: index, keyID: key))
                let plaintexts = ["last_name": view.lastName, "first_name": view.firstName, "birth_date": view.birthDate, "ins": view.ins].compactMapValues { $0 }
                #expect(try row.optionalBytes("search_ins") == SearchToken.patientINS.token(of: plaintexts, index: index, keyID: key))
            }
            #expect(patients.values.contains { $0.ins != nil } && patients.values.contains { $0.ins == nil })
            #expect(throws: CareError.self, "parts that do not match the token's sources") {
                try SearchToken.patientNameBirth.token(["only one"], index: index, keyID: try ring.primaryID(for: .blindIndex))
            }
        }
    }
}
