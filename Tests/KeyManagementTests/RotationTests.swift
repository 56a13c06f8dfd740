import CareRecords
import Foundation
import Journal
import KeyManagement
import Keyring
import Settings
import Store
import Testing
import TestSupport

/// A database with a keyring, a team, a user and patients written through the care
/// store, as osmose-care writes them.
struct KeyFixture {
    let database: TestDatabase
    let admin: Connection
    let master: MasterKey
    let principal: Principal

    static func make(_ name: String, patients: Int) async throws -> (KeyFixture, [UUID: PatientView]) {
        let database = try await TestDatabase.create(name)
        let admin = try await Connection.connect(database.connectionString, logger: testLogger)
        try await migrate(admin)
        let master = try MasterKey.generate()
        try await DataKeyRing.initialise(on: admin, master: master, createdBy: "tests")
        let (team, user) = (UUID(), UUID())
        try await admin.transaction { connection in
            try connection.query("INSERT INTO care.teams (id, code, name) VALUES ($1, 'sau', 'Urgences')", [team])
            try connection.query(
                "INSERT INTO care.users (id, username, display_name, role, team_id, password_hash) VALUES ($1, 'agent.sau', 'Agent', 'agent', $2, 'x')",
                [user, team])
        }
        let fixture = KeyFixture(
            database: database, admin: admin, master: master,
            principal: Principal(userID: user, username: "agent.sau", role: .agent, teamID: team, teamCode: "sau"))
        let ring = try await DataKeyRing.load(on: admin, master: master)
        var created: [UUID: PatientView] = [:]
        for batch in stride(from: 0, to: patients, by: 100) {
            let views = try await admin.transaction { [fixture] connection in
                try (batch..<min(batch + 100, patients)).map { index in
                    try CareStore(ring: ring).createPatient(Self.input(index), by: fixture.principal, on: connection)
                }
            }
            for view in views { created[view.id] = view }
        }
        return (fixture, created)
    }

    /// Patient number `index`: a distinct name, every third with an INS.
    static func input(_ index: Int) throws -> PatientInput {
        var fields: [String: String] = [
            "last_name": "Nom-\(letters(index))", "first_name": "Prénom", "birth_date": "1980-01-\(String(format: "%02d", index % 28 + 1))", "sex": "female",
        ]
        if index % 3 == 0 {
            let number = 2_800_175_000_000 + index
            fields["ins"] = "\(number)\(String(format: "%02d", 97 - number % 97))"
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(PatientInput.self, from: JSONEncoder().encode(fields))
    }

    /// `index` spelled in letters (names may hold no digits).
    static func letters(_ index: Int) -> String {
        var text = "", rest = index
        repeat {
            text.append(Character(UnicodeScalar(UInt8(97 + rest % 26))))
            rest /= 26
        } while rest > 0
        return text
    }

    /// A connection as the osmose_keyd role (what the daemon has).
    func keydConnection() async throws -> Connection {
        try await Connection.connect("\(database.connectionString) user=osmose_keyd", logger: testLogger)
    }

    func close() async {
        await admin.close()
        await database.drop()
    }

    /// Runs `body` with a new fixture and its patients, closed and dropped on every path.
    static func with<Result>(_ name: String, patients: Int, _ body: (KeyFixture, [UUID: PatientView]) async throws -> Result) async throws -> Result {
        try await withResource(try await make(name, patients: patients), release: { await $0.0.close() }) { try await body($0.0, $0.1) }
    }
}

@Suite("Key rotation: osmose-keyd's re-encryption, retirement and destruction")
struct RotationTests {
    static let policy = KeyPolicy(cryptoperiodDays: KeyPolicy.defaults.cryptoperiodDays, maximumValuesPerSecond: 1_000_000, batchSize: 37)

    @Test("A column-key rotation under writes: a stale writer is refused then succeeds after reloading, every value moves, plaintexts unchanged, the old key retired")
    func columnRotation() async throws {
        try await KeyFixture.with("keyrot_column", patients: 150) { fixture, patients in
            let admin = fixture.admin
            let careRing = try await DataKeyRing.load(on: admin, master: fixture.master)
            let oldKey = try careRing.primaryID(for: .column)
            let before = try await admin.perform { try KeyRotation.census(.column, on: $0) }
            let total = before.values.flatMap(\.values).reduce(0, +)
            #expect(total == 150 * 4 + 50 + 150, "four identity columns, 50 INS, 150 version snapshots")

            let rotation = try await admin.transaction { [master = fixture.master] connection in
                try KeyRotation.start(purpose: .column, reason: "test", master: master, cryptoperiodDays: 365, actor: .operator("tests", role: .sysadmin), on: connection)
            }
            #expect(rotation.fromKeys == [oldKey] && rotation.toKey != oldKey)
            // The care ring still encrypts under the demoted key: the database refuses it.
            await #expect { try await admin.transaction { [principal = fixture.principal] connection in
                try CareStore(ring: careRing).createPatient(KeyFixture.input(1_000), by: principal, on: connection)
            } } throws: { ($0 as? StoreError)?.sqlState == "OSK01" }
            try await careRing.reload(on: admin)
            let late = try await admin.transaction { [principal = fixture.principal] connection in
                try CareStore(ring: careRing).createPatient(KeyFixture.input(1_001), by: principal, on: connection)
            }

            let keyd = try await fixture.keydConnection()
            let keydRing = try await DataKeyRing.load(on: keyd, master: fixture.master)
            let summary = try await RotationWorker(policy: Self.policy, master: fixture.master, ring: keydRing, logger: testLogger).run(on: keyd) { false }
            await keyd.close()
            #expect(summary.finished == 1)
            #expect(summary.rewritten == Int(total), "each value rewritten exactly once")

            let after = try await admin.perform { try KeyRotation.census(.column, on: $0) }
            for (target, byKey) in after { #expect(byKey.isEmpty || Set(byKey.keys) == [rotation.toKey], "\(target): \(byKey)") }
            #expect(after["care.patients.last_name"]?[rotation.toKey] == 151 && after["care.record_versions.snapshot"]?[rotation.toKey] == 151)
            let state = try await admin.query("SELECT state, retired_at IS NOT NULL AS dated FROM keys.data_keys WHERE id = $1", [oldKey]).rows[0]
            #expect(try state.string("state") == "retired" && state.bool("dated"))
            for (id, view) in patients {
                let now = try await admin.perform { try CareStore(ring: careRing).patient(id, on: $0) }
                #expect(now == view, "plaintext unchanged for \(id)")
            }
            #expect(try await admin.perform { try CareStore(ring: careRing).patient(late.id, on: $0) } == late)
            let events = try await admin.query("SELECT count(*) AS n FROM journal.intake WHERE action = 'key-admin'").rows[0].int("n")
            #expect(events == 2, "the start and the end of the rotation are journaled")
        }
    }

    @Test("A blind-index rotation: searches find every patient before, during (after each batch) and after it")
    func blindIndexRotation() async throws {
        try await KeyFixture.with("keyrot_blind", patients: 60) { fixture, patients in
            let admin = fixture.admin
            let careRing = try await DataKeyRing.load(on: admin, master: fixture.master)
            let oldKey = try careRing.primaryID(for: .blindIndex)
            let rotation = try await admin.transaction { [master = fixture.master] connection in
                try KeyRotation.start(purpose: .blindIndex, reason: "test", master: master, cryptoperiodDays: 365, actor: .operator("tests", role: .sysadmin), on: connection)
            }
            let keyd = try await fixture.keydConnection()
            let keydRing = try await DataKeyRing.load(on: keyd, master: fixture.master)
            /// A search as osmose-care runs it: reload and retry once when the keys changed.
            func search(_ view: PatientView) async throws -> [UUID] {
                func attempt() async throws -> [UUID] {
                    try await admin.perform { connection in
                        try CareStore(ring: careRing).searchPatients(
                            lastName: view.lastName, firstName: view.firstName, birthDate: view.birthDate, ins: nil, on: connection
                        ).map(\.id)
                    }
                }
                do { return try await attempt() } catch let error as KeyringError where error.code == .staleRing {
                    try await careRing.reload(on: admin)
                    return try await attempt()
                }
            }
            let sample = Array(patients.values.sorted { $0.lastName < $1.lastName }.prefix(12))
            var batches = 0
            while let (target, after) = try await keyd.perform({ try KeyRotation.nextTarget(of: rotation, on: $0) }) {
                _ = try await keyd.transaction { try KeyRotation.rewriteBatch(rotation, target: target, after: after, limit: 7, ring: keydRing, on: $0) }
                batches += 1
                for view in sample { #expect(try await search(view) == [view.id], "found during the changeover, batch \(batches)") }
            }
            #expect(batches >= 60 / 7)
            let fence = try await keyd.transaction { try KeyRotation.fence(on: $0) }
            while try await !keyd.perform({ try KeyRotation.passed(fence, on: $0) }) { try await Task.sleep(for: .milliseconds(20)) }
            let current = try await keyd.perform { try KeyRotation.running(on: $0) }.first!
            #expect(try await keyd.transaction { try KeyRotation.finish(current, actor: .daemon(.keyd), on: $0) })
            await keyd.close()
            #expect(try await admin.query("SELECT state FROM keys.data_keys WHERE id = $1", [oldKey]).rows[0].string("state") == "retired")
            for view in patients.values { #expect(try await search(view) == [view.id]) }
            let insHolder = try #require(patients.values.first { $0.ins != nil })
            let found = try await admin.perform { try CareStore(ring: careRing).searchPatients(lastName: nil, firstName: nil, birthDate: nil, ins: insHolder.ins, on: $0) }
            #expect(found.map(\.id) == [insHolder.id])
        }
    }

    @Test("Destroying a key: refused while values need it, a dry run changes nothing, forcing leaves evidence and the values fail with a clear error")
    func destruction() async throws {
        try await KeyFixture.with("keyrot_destroy", patients: 5) { fixture, patients in
            let admin = fixture.admin
            let ring = try await DataKeyRing.load(on: admin, master: fixture.master)
            let column = try ring.primaryID(for: .column)
            await #expect { try await admin.transaction { try KeyInventory.destroy(keyID: column, reason: "test", force: true, dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0) } }
                throws: { ($0 as? KeyringError)?.code == .refused }
            _ = try await admin.transaction { [master = fixture.master] connection in
                try KeyRotation.start(purpose: .column, reason: "test", master: master, cryptoperiodDays: 365, actor: .operator("tests", role: .sysadmin), on: connection)
            }
            await #expect { try await admin.transaction { try KeyInventory.destroy(keyID: column, reason: "test", force: false, dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0) } }
                throws: { "\($0)".contains("care.patients.last_name: 5") && "\($0)".contains("--force") }
            let dry = try await admin.transaction { try KeyInventory.destroy(keyID: column, reason: "drill", force: true, dryRun: true, actor: .operator("tests", role: .sysadmin), on: $0) }
            #expect(!dry.destroyed && dry.unreadable["care.patients.first_name"] == 5)
            #expect(try await admin.query("SELECT state FROM keys.data_keys WHERE id = $1", [column]).rows[0].string("state") == "decrypt-only")
            let done = try await admin.transaction { try KeyInventory.destroy(keyID: column, reason: "court order", force: true, dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0) }
            #expect(done.destroyed && done.forced)
            let evidence = try await admin.query("SELECT reason, forced, unreadable->>'care.patients.sex' AS sex FROM keys.destructions WHERE key_id = $1", [column]).rows[0]
            #expect(try evidence.string("reason") == "court order" && evidence.bool("forced") && evidence.string("sex") == "5")
            try await ring.reload(on: admin)
            let id = try #require(patients.keys.first)
            await #expect { try await admin.perform { try CareStore(ring: ring).patient(id, on: $0) } } throws: { ($0 as? KeyringError)?.code == .unknownKey }
            #expect(try await admin.query("SELECT count(*) AS n FROM journal.intake WHERE action = 'key-admin' AND reason LIKE 'destroyed (forced)%'").rows[0].int("n") == 1)
        }
    }

    @Test("Master-key rotation rewraps the data keys only: the new master loads them, the old one is refused by name, values are unchanged")
    func masterRotation() async throws {
        try await KeyFixture.with("keyrot_master", patients: 3) { fixture, patients in
            let admin = fixture.admin
            let next = try MasterKey.generate()
            let ciphertexts = try await admin.query("SELECT last_name FROM care.patients ORDER BY id").rows.map { try $0.bytes("last_name") }
            let count = try await admin.transaction { [master = fixture.master] in try KeyLifecycle.rewrap(from: master, to: next, on: $0) }
            #expect(count == DataKeyPurpose.allCases.count)
            #expect(try await admin.query("SELECT last_name FROM care.patients ORDER BY id").rows.map { try $0.bytes("last_name") } == ciphertexts)
            let ring = try await DataKeyRing.load(on: admin, master: next)
            for (id, view) in patients { #expect(try await admin.perform { try CareStore(ring: ring).patient(id, on: $0) } == view) }
            await #expect { try await DataKeyRing.load(on: admin, master: fixture.master) } throws: {
                ($0 as? KeyringError)?.code == .wrongMasterKey && "\($0)".contains(next.fingerprint)
            }
            await #expect { try await admin.transaction { [master = fixture.master] in try KeyLifecycle.rewrap(from: master, to: next, on: $0) } }
                throws: { ($0 as? KeyringError)?.code == .wrongMasterKey }
            await #expect { try await admin.transaction { try KeyLifecycle.rewrap(from: next, to: next, on: $0) } } throws: { ($0 as? KeyringError)?.code == .refused }
        }
    }

    @Test("The lifecycle's order is enforced by the database: no going back, no reviving a destroyed key")
    func transitions() async throws {
        try await KeyFixture.with("keyrot_states", patients: 0) { fixture, _ in
            let admin = fixture.admin
            let id = try await admin.query("SELECT id FROM keys.data_keys WHERE purpose = 'pseudonymisation'").rows[0].int("id")
            await #expect { try await admin.query("UPDATE keys.data_keys SET state = 'retired' WHERE id = $1", [id]) } throws: {
                ($0 as? StoreError)?.sqlState == "OSK02"
            }
            await #expect { try await admin.query("UPDATE keys.data_keys SET purpose = 'column' WHERE id = $1", [id]) } throws: {
                ($0 as? StoreError)?.sqlState == "OSK02"
            }
        }
    }
}
