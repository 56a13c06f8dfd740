import CareRecords
import Foundation
import Journal
import Keyring
import Logging
import Retention
import Settings
import Store
import TestSupport

/// A migrated database with a keyring, two teams' users, and patients with
/// synthetic care histories (dates set in the past by the administrator, as years
/// of use would leave them). Closed and dropped on every path.
struct RetentionFixture {
    let database: TestDatabase
    let admin: Connection
    let master: MasterKey
    let ring: DataKeyRing
    let principal: Principal
    let policy: LoadedRetentionPolicy

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func with<Result>(_ name: String, master: MasterKey? = nil, _ body: (RetentionFixture) async throws -> Result) async throws -> Result {
        try await TestDatabase.with(name) { database in
            let admin = try await Connection.connect(database.connectionString, logger: testLogger)
            do {
                let fixture = try await make(database, admin: admin, master: master ?? MasterKey.generate())
                let result = try await body(fixture)
                await admin.close()
                return result
            } catch {
                await admin.close()
                throw error
            }
        }
    }

    static func make(_ database: TestDatabase, admin: Connection, master: MasterKey) async throws -> RetentionFixture {
        try await migrate(admin)
        try await DataKeyRing.initialise(on: admin, master: master, createdBy: "tests")
        let (team, user) = (UUID(), UUID())
        try await admin.transaction { connection in
            try connection.query("INSERT INTO care.teams (id, code, name) VALUES ($1, 'sau', 'Urgences')", [team])
            try connection.query(
                "INSERT INTO care.users (id, username, display_name, role, team_id, password_hash) VALUES ($1, 'manager.sau', 'Cadre', 'manager', $2, 'x')",
                [user, team])
        }
        return RetentionFixture(
            database: database, admin: admin, master: master, ring: try await DataKeyRing.load(on: admin, master: master),
            principal: Principal(userID: user, username: "manager.sau", role: .manager, teamID: team, teamCode: "sau"),
            policy: try LoadedRetentionPolicy.load(
                retention: repository.appendingPathComponent("policies/retention.yaml").path, backup: repository.appendingPathComponent("policies/backup.yaml").path))
    }

    /// A connection as the osmose_retention role: what osmose-retentiond has.
    func retentionConnection() async throws -> Connection {
        try await Connection.connect("\(database.connectionString) user=osmose_retention", logger: testLogger)
    }

    /// Runs `body` with a connection as osmose_retention, closed afterwards.
    func asRetention<Result>(_ body: (Connection) async throws -> Result) async throws -> Result {
        try await Connection.withConnection("\(database.connectionString) user=osmose_retention", logger: testLogger, body)
    }

    var store: CareStore { CareStore(ring: ring) }

    func builder() -> PlanBuilder { PlanBuilder(policy: policy.policy, policySHA256: policy.sha256, ring: ring) }

    func applier(_ actor: SystemActor = .daemon(.retentiond), batchSizes: PlanApplication.BatchSizes = .standard) -> PlanApplier {
        PlanApplier(policy: policy.policy, policySHA256: policy.sha256, ring: ring, actor: actor, batchSizes: batchSizes, logger: testLogger)
    }

    /// One episode of a synthetic history: when it began and, if closed, ended.
    struct Stay {
        let arrival: String
        let closed: String?
        let transmissions: [String]

        init(_ arrival: String, closed: String?, transmissions: [String] = []) {
            self.arrival = arrival
            self.closed = closed
            self.transmissions = transmissions
        }
    }

    /// Registers a patient (as the care service would), then sets the history's dates
    /// as they would be after years of use.
    @discardableResult
    func patient(
        _ lastName: String, _ firstName: String = "Camille", born birthDate: String, ins: String? = nil, registered: String = "2000-01-01",
        stays: [Stay] = [], died: String? = nil, reason: String = "Douleur thoracique atypique"
    ) async throws -> UUID {
        let principal = self.principal
        let ring = self.ring
        return try await admin.transaction { connection in
            let store = CareStore(ring: ring)
            let insField = ins.map { #","ins":"\#($0)""# } ?? ""
            let input = try CareJSON.decode(
                PatientInput.self,
                from: Array(#"{"last_name":"\#(lastName)","first_name":"\#(firstName)","birth_date":"\#(birthDate)","sex":"female"\#(insField)}"#.utf8))
            let patient = try store.createPatient(input, by: principal, on: connection).id
            try connection.query("UPDATE care.patients SET created_at = $2::date, updated_at = $2::date WHERE id = $1", [patient, registered])
            for stay in stays {
                let episode = try store.createEpisode(
                    try CareJSON.decode(EpisodeInput.self, from: Array(#"{"patient_id":"\#(patient.uuidString)","arrival_mode":"walk-in","reason":"\#(reason)"}"#.utf8)),
                    by: principal, teamScoped: false, on: connection)
                for text in stay.transmissions {
                    _ = try store.createTransmission(
                        episodeID: episode.id,
                        try CareJSON.decode(
                            TransmissionInput.self, from: Array(#"{"body":"\#(text)","checklist":[{"label":"Appeler \#(text)","done":false}]}"#.utf8)),
                        by: principal, teamScoped: false, on: connection)
                }
                if stay.closed != nil { _ = try store.closeEpisode(episode.id, by: principal, teamScoped: false, on: connection) }
                try connection.query(
                    "UPDATE care.episodes SET arrival_at = $2::date + time '10:00', closed_at = CASE WHEN status = 'closed' THEN $3::date + time '18:00' END WHERE id = $1",
                    [episode.id, stay.arrival, stay.closed])
            }
            if let died { _ = try store.setDateOfDeath(patient, to: died, by: .operator("tests"), on: connection) }
            return patient
        }
    }

    /// An ended session of `user`, ended at `ended` (ISO date).
    func session(endedOn ended: String) async throws -> String {
        let hash = (0..<32).map { _ in UInt8.random(in: 0...255) }
        try await admin.query(
            "INSERT INTO care.sessions (token_hash, user_id, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3::date - interval '1 hour', $3::date - interval '1 hour', $3::date)",
            [hash, principal.userID, ended])
        return hash.map { String(format: "%02x", $0) }.joined()
    }

    /// Every care row of a patient as stored (its patient row, episodes, transmissions, versions), to compare before and after.
    func rows(of patient: UUID) async throws -> [String] {
        try await admin.query(
            """
            SELECT 'p ' || p::text AS row FROM care.patients p WHERE id = $1
            UNION ALL SELECT 'e ' || e::text FROM care.episodes e WHERE patient_id = $1
            UNION ALL SELECT 't ' || t::text FROM care.transmissions t JOIN care.episodes e ON e.id = t.episode_id WHERE e.patient_id = $1
            UNION ALL SELECT 'v ' || v::text FROM care.record_versions v WHERE v.record_id = $1
                OR v.record_id IN (SELECT id FROM care.episodes WHERE patient_id = $1)
                OR v.record_id IN (SELECT t.id FROM care.transmissions t JOIN care.episodes e ON e.id = t.episode_id WHERE e.patient_id = $1)
            ORDER BY 1
            """, [patient]
        ).rows.map { try $0.string("row") }
    }

    /// A copy of the database as it stands (pg_dump into a new database, while the
    /// fixture's connection stays open), dropped by the caller.
    func copy() async throws -> CopiedDatabase {
        let name = "\(database.name)_copy"
        let administrator = try TestDatabase.administratorConnectionString()
        try await Connection.withConnection(administrator, logger: testLogger) { server in try await server.execute("CREATE DATABASE \(name)") }
        let copied = CopiedDatabase(name: name, connectionString: "\(administrator) dbname=\(name)")
        let outcome = try await runProgram(
            "/bin/sh", ["-c", "pg_dump -d \"$0\" | psql -q -v ON_ERROR_STOP=1 -d \"$1\"", database.connectionString, copied.connectionString])
        guard outcome.status == 0 else {
            await copied.drop()
            throw TestEnvironmentError("copying \(database.name) failed: \(outcome.standardError)")
        }
        return copied
    }

    /// Today in the policy's time zone.
    var today: CivilDate { CivilDate(Date(), in: TimeZone(identifier: policy.policy.careRecords.timeZone)!) }
}

/// A database copied from a fixture's.
struct CopiedDatabase: Sendable {
    let name: String
    let connectionString: String

    func drop() async {
        guard let administrator = try? TestDatabase.administratorConnectionString() else { return }
        try? await Connection.withConnection(administrator, logger: testLogger) { server in
            _ = try await server.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name])
            try await server.execute("DROP DATABASE IF EXISTS \(name)")
        }
    }
}
