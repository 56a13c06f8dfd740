import CareRecords
import Foundation
import Testing
import Journal
import Keyring
import Store
import SubjectRequests
import TestSupport

/// A database with the care records, the journal and the register, reached as the
/// roles that use them in production: care data written through the care store as
/// osmose-care writes it, accesses journaled and sequenced into signed checkpoints
/// as osmose-journald does, and the DPO's work done as osmose_dsar.
final class DSARFixture: Sendable {
    let database: TestDatabase
    let admin: Connection
    let dsar: Connection
    let journald: Connection
    let master: MasterKey
    let ring: DataKeyRing
    let signer: NoteSignerKey
    let state: Locked<JournalState?>
    /// Care users by login name.
    let users: [String: Principal]

    static let timeZone = TimeZone(identifier: "Europe/Paris")!
    static let dpo = SystemActor.operator("dpo.test@host via osmosectl", role: .dpo)

    private init(
        database: TestDatabase, admin: Connection, dsar: Connection, journald: Connection, master: MasterKey, ring: DataKeyRing, signer: NoteSignerKey,
        users: [String: Principal]
    ) {
        self.database = database
        self.admin = admin
        self.dsar = dsar
        self.journald = journald
        self.master = master
        self.ring = ring
        self.signer = signer
        self.state = Locked(nil)
        self.users = users
    }

    static func make(_ purpose: String) async throws -> DSARFixture {
        let database = try await TestDatabase.create(purpose)
        let admin = try await Connection.connect(database.connectionString, logger: testLogger)
        try await migrate(admin)
        let master = try MasterKey.generate()
        try await DataKeyRing.initialise(on: admin, master: master, createdBy: "tests")
        var users: [String: Principal] = [:]
        try await admin.transaction { connection in
            for (code, name) in [("sau", "Urgences"), ("epl", "Psychiatrie de liaison")] {
                try connection.query("INSERT INTO care.teams (id, code, name) VALUES ($1, $2, $3)", [UUID(), code, name])
            }
        }
        for (name, role, team) in [("camille.sau", Role.agent, "sau"), ("dominique.sau", .manager, "sau"), ("yanis.epl", .agent, "epl"), ("leo.epl", .agent, "epl")] {
            let id = UUID()
            let teamID = try await admin.query("SELECT id FROM care.teams WHERE code = $1", [team]).rows[0].uuid("id")
            try await admin.query(
                "INSERT INTO care.users (id, username, display_name, role, team_id, password_hash) VALUES ($1, $2, $3, $4, $5, 'x')",
                [id, name, "Display \(name)", role.rawValue, teamID])
            users[name] = Principal(userID: id, username: name, role: role, teamID: teamID, teamCode: team)
        }
        let dsar = try await Connection.connect("\(database.connectionString) user=osmose_dsar", logger: testLogger)
        let journald = try await Connection.connect("\(database.connectionString) user=osmose_journald", logger: testLogger)
        let ring = try await DataKeyRing.load(on: dsar, master: master)
        return DSARFixture(
            database: database, admin: admin, dsar: dsar, journald: journald, master: master, ring: ring,
            signer: try NoteSignerKey.generate(name: "journal.test.example"), users: users)
    }

    func close() async {
        await admin.close()
        await dsar.close()
        await journald.close()
        await database.drop()
    }

    /// Runs `body` with a new fixture, dropped on every path.
    static func with<Result>(_ purpose: String, _ body: (DSARFixture) async throws -> Result) async throws -> Result {
        try await withResource(try await make(purpose), release: { await $0.close() }, body)
    }

    var store: CareStore { CareStore(ring: ring) }

    /// The register, as the DPO.
    func register(ring: DataKeyRing? = nil, actor: SystemActor = DSARFixture.dpo) -> RequestRegister {
        RequestRegister(actor: actor, timeZone: Self.timeZone, ring: ring ?? self.ring)
    }

    func user(_ name: String) -> Principal { users[name]! }

    // MARK: Care data, as osmose-care writes it (with its access events)

    func createPatient(_ last: String, _ first: String, _ birth: String, ins: String? = nil, by name: String = "camille.sau") async throws -> PatientView {
        let store = self.store
        let principal = user(name)
        let input = try CareJSON.decode(
            PatientInput.self,
            from: Array(
                try JSONSerialization.data(
                    withJSONObject: ["last_name": last, "first_name": first, "birth_date": birth, "sex": "female"].merging(ins.map { ["ins": $0] } ?? [:]) { a, _ in a })))
        return try await admin.transaction { connection in
            let view = try store.createPatient(input, by: principal, on: connection)
            try connection.record(Self.event(principal, .create, "patient", patient: view.id))
            return view
        }
    }

    func createEpisode(_ patient: UUID, reason: String, by name: String = "camille.sau") async throws -> EpisodeView {
        let store = self.store
        let principal = user(name)
        let input = try CareJSON.decode(
            EpisodeInput.self, from: Array(#"{"patient_id":"\#(patient.uuidString.lowercased())","arrival_mode":"ambulance","reason":"\#(reason)","lab_note":"Bilan demandé"}"#.utf8))
        return try await admin.transaction { connection in
            let view = try store.createEpisode(input, by: principal, teamScoped: true, on: connection)
            try connection.record(Self.event(principal, .create, "episode", patient: patient))
            return view
        }
    }

    func createTransmission(_ episode: EpisodeView, body: String, addressedTo team: String? = nil, by name: String = "camille.sau") async throws -> TransmissionView {
        let store = self.store
        let principal = user(name)
        var object: [String: Any] = ["body": body, "checklist": [["label": "Appeler la famille", "done": false]]]
        if let team { object["addressed_team"] = team }
        let input = try CareJSON.decode(TransmissionInput.self, from: Array(try JSONSerialization.data(withJSONObject: object)))
        return try await admin.transaction { connection in
            let view = try store.createTransmission(episodeID: episode.id, input, by: principal, teamScoped: false, on: connection)
            try connection.record(Self.event(principal, .create, "transmission", patient: episode.patientId))
            return view
        }
    }

    func updateEpisode(_ episode: EpisodeView, activity: String, by name: String = "camille.sau") async throws {
        let store = self.store
        let principal = user(name)
        let patch = try CareJSON.decode(EpisodePatch.self, from: Array(#"{"activity_status":"\#(activity)","box_status":"assigned"}"#.utf8))
        try await admin.transaction { connection in
            _ = try store.updateEpisode(episode.id, patch, by: principal, teamScoped: false, on: connection)
            try connection.record(Self.event(principal, .update, "episode", patient: episode.patientId))
        }
    }

    /// Journals a read of `patient`'s record by `name`, as osmose-care would.
    func read(_ patient: UUID, by name: String, objectType: String = "patient", result: AccessResult = .success) async throws {
        let event = Self.event(user(name), .read, objectType, patient: patient, result: result)
        try await admin.transaction { connection in try connection.record(event) }
    }

    static func event(_ principal: Principal, _ action: AccessAction, _ objectType: String, patient: UUID, result: AccessResult = .success) -> AccessEvent {
        var event = AccessEvent(source: "osmose-care", requestID: UUID().uuidString.lowercased(), action: action, objectType: objectType, result: result)
        event.actorUserID = principal.userID
        event.actorUsername = principal.username
        event.actorRole = principal.role.rawValue
        event.actorTeam = principal.teamCode
        event.patientID = patient
        event.purpose = .care
        event.clientIP = "10.1.2.3"
        event.userAgent = "tests"
        return event
    }

    // MARK: The journal, as osmose-journald sequences it

    /// Sequences the whole intake and signs a checkpoint covering it.
    @discardableResult
    func sequence() async throws -> CheckpointRecord {
        var current: JournalState
        if let known = state.withLock({ $0 }) {
            current = known
        } else {
            current = try await journald.perform { connection in try JournalDatabase.loadState(on: connection) }
        }
        try await journald.perform { connection in
            try JournalDatabase.ensurePartition(on: connection, containing: Int64(Date().timeIntervalSince1970 * 1_000_000))
        }
        while true {
            let start = current
            let result = try await journald.transaction { connection in
                try JournalDatabase.appendBatch(on: connection, state: start, limit: 500, now: Int64(Date().timeIntervalSince1970 * 1_000_000), above: 0)
            }
            current = result.state
            if result.appended < 500 { break }
        }
        let signer = self.signer
        let final = current
        let (next, checkpoint) = try await journald.transaction { connection in
            try JournalDatabase.issueCheckpoint(on: connection, state: final, signers: [signer], now: Int64(Date().timeIntervalSince1970 * 1_000_000))
        }
        state.withLock { $0 = next }
        return checkpoint
    }

    /// Row counts of every table of the dsar and care schemas and of the intake, to show nothing was written.
    func counts() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await admin.query(
            "SELECT table_schema || '.' || table_name AS name FROM information_schema.tables WHERE table_schema IN ('dsar', 'care') AND table_type = 'BASE TABLE'"
        ).rows {
            let name = try row.string("name")
            counts[name] = try await admin.query("SELECT count(*) AS n FROM \(name)").rows[0].int("n")
        }
        counts["journal.intake"] = try await admin.query("SELECT count(*) AS n FROM journal.intake").rows[0].int("n")
        return counts
    }

    /// Registers a request about `patient` received `daysAgo` days ago, its identity checked unless told otherwise.
    func open(
        _ kind: RequestKind, patient: PatientView, daysAgo: Double = 3, identityChecked: Bool = true, capacity: RequesterCapacity = .patient
    ) async throws -> RequestRecord {
        let register = self.register()
        let received = Date().addingTimeInterval(-daysAgo * 86400)
        let lastName = try #require(patient.lastName), firstName = try #require(patient.firstName), birthDate = try #require(patient.birthDate)
        let new = NewRequest(
            kind: kind, subject: .patientName(lastName: lastName, firstName: firstName, birthDate: birthDate),
            chosenPatient: patient.id, capacity: capacity, representation: capacity == .legalRepresentative ? .minor : nil,
            requesterName: "\(firstName) \(lastName)", requesterContact: "12 rue des Lilas, 75011 Paris", receivedAt: received,
            identityCheck: identityChecked ? IdentityCheck(checkedBy: "accueil", checkedAt: received, documents: "carte d'identité n° 123456789012") : nil)
        return try await dsar.transaction { connection in try register.open(new, on: connection) }
    }
}
