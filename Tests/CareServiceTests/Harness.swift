import CareRecords
import CareService
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import Journal
import Keyring
import NIOCore
import ServiceLifecycle
import Settings
import Store
import TestSupport

/// The care API served for real over loopback HTTP, in this process, against a
/// database of its own; the service's pool logs in as the restricted osmose_care
/// role, exactly as in production.
final class CareHarness: Sendable {
    let database: TestDatabase
    let admin: Connection
    let master: MasterKey
    let baseURL: String
    let group: ServiceGroup
    let pool: ConnectionPool
    let running: Task<Void, any Error>
    static let password = "correct horse battery staple"

    /// The accounts every harness has: two agents and two managers in two teams, and an admin.
    static let users: [(name: String, role: Role, team: String?)] = [
        ("agent.sau", .agent, "sau"), ("manager.sau", .manager, "sau"), ("agent.epl", .agent, "epl"), ("manager.epl", .manager, "epl"),
        ("admin", .admin, nil),
    ]

    private init(
        database: TestDatabase, admin: Connection, master: MasterKey, baseURL: String, group: ServiceGroup, pool: ConnectionPool, running: Task<Void, any Error>
    ) {
        self.database = database
        self.admin = admin
        self.master = master
        self.baseURL = baseURL
        self.group = group
        self.pool = pool
        self.running = running
    }

    static func start(_ name: String, settings: CareAPISettings = CareAPISettings(sessions: SessionSettings(), passwordCostExponent: 10)) async throws -> CareHarness {
        let database = try await TestDatabase.create(name)
        let admin = try await Connection.connect(database.connectionString, logger: testLogger)
        try await migrate(admin)
        let master = try MasterKey.generate()
        try await DataKeyRing.initialise(on: admin, master: master, createdBy: "tests")
        let hash = try PasswordHasher(costExponent: 10).hash(password)
        try await admin.transaction { connection in
            for (code, teamName) in [("sau", "Urgences"), ("epl", "Psychiatrie de liaison")] {
                try connection.query("INSERT INTO care.teams (id, code, name) VALUES ($1, $2, $3)", [UUID(), code, teamName])
            }
            for user in users {
                try connection.query(
                    "INSERT INTO care.users (id, username, display_name, role, team_id, password_hash) VALUES ($1, $2, $2, $3, (SELECT id FROM care.teams WHERE code = $4), $5)",
                    [UUID(), user.name, user.role.rawValue, user.team, hash])
            }
        }
        let pool = ConnectionPool(
            configuration: .init(connectionString: "\(database.connectionString) user=osmose_care", applicationName: "osmose-care-test", maximumConnections: 4),
            logger: testLogger)
        let ring = try await pool.withConnection { try await DataKeyRing.load(on: $0, master: master) }
        let policy = try AccessPolicy.load(path: repositoryRoot.appendingPathComponent("policies/access.yaml").path)
        let api = CareAPI(pool: pool, ring: ring, policy: policy, settings: settings, logger: testLogger)
        let port = PortBox()
        let application = api.application(
            address: .hostname("127.0.0.1", port: 0), onServerRunning: { channel in port.set(channel.localAddress?.port ?? 0) }, logger: testLogger)
        let group = ServiceGroup(configuration: .init(services: [application], logger: testLogger))
        let running = Task { try await group.run() }
        for _ in 0..<500 where port.value == nil { try await Task.sleep(for: .milliseconds(10)) }
        guard let bound = port.value else { throw TestEnvironmentError("the care API did not start listening") }
        return CareHarness(database: database, admin: admin, master: master, baseURL: "http://127.0.0.1:\(bound)", group: group, pool: pool, running: running)
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await running.value
        await pool.shutdown()
        await admin.close()
        await database.drop()
    }

    /// Runs `body` with a started harness, stopped (server, pool, database) on every
    /// path: a failed `#require` leaks no server and no database.
    static func with<Result>(
        _ name: String, settings: CareAPISettings = CareAPISettings(sessions: SessionSettings(), passwordCostExponent: 10),
        _ body: (CareHarness) async throws -> Result
    ) async throws -> Result {
        try await withResource(try await start(name, settings: settings), release: { await $0.stop() }, body)
    }

    struct Reply: Sendable {
        let status: Int
        let body: Data
        let requestID: String?
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: Any? { try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) }
        var object: [String: Any] { json as? [String: Any] ?? [:] }
        var array: [[String: Any]] { json as? [[String: Any]] ?? [] }
        var errorCode: String? { (object["error"] as? [String: Any])?["code"] as? String }
    }

    /// Sends one request. `purpose` nil sends no Osmose-Purpose header.
    func request(
        _ method: String, _ path: String, token: String?, purpose: String? = "care", body: String? = nil, headers: [String: String] = [:]
    ) async throws -> Reply {
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let purpose { request.setValue(purpose, forHTTPHeaderField: "Osmose-Purpose") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        return Reply(status: http.statusCode, body: data, requestID: http.value(forHTTPHeaderField: "Osmose-Request-Id"))
    }

    func login(_ username: String, password: String = CareHarness.password) async throws -> String {
        let reply = try await request("POST", "/v1/auth/login", token: nil, purpose: nil, body: #"{"username":"\#(username)","password":"\#(password)"}"#)
        guard reply.status == 200, let token = reply.object["token"] as? String else {
            throw TestEnvironmentError("login of \(username) failed: \(reply.status) \(reply.text)")
        }
        return token
    }

    /// The port the API listens on (loopback).
    var port: Int { Int(baseURL.split(separator: ":").last!)! }

    /// What the service holds while a request goes unanswered, for a failure's
    /// message: the pool's connections and waiters, and what each of the database's
    /// sessions is doing (state, wait, transaction age, statement).
    func diagnostics() async -> String {
        let usage = await pool.usage
        var text = "pool: \(usage.open) open, \(usage.idle) idle, \(usage.waiting) waiting"
        do {
            let sessions = try await admin.query(
                """
                SELECT application_name, state, coalesce(wait_event_type || ':' || wait_event, '-') AS waiting,
                       coalesce(round(extract(epoch FROM now() - xact_start))::text, '-') AS transaction_seconds, left(query, 100) AS statement
                FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY backend_start
                """
            ).rows
            for session in sessions {
                text += "; [\(try session.optionalString("application_name") ?? "") \(try session.optionalString("state") ?? "") "
                text += "wait \(try session.string("waiting")) transaction \(try session.string("transaction_seconds")) s: \(try session.optionalString("statement") ?? "")]"
            }
        } catch {
            text += "; database sessions unreadable: \(error)"
        }
        return text
    }

    /// The access events recorded for one request.
    func events(requestID: String) async throws -> [Row] {
        try await admin.query("SELECT * FROM journal.intake WHERE request_id = $1 ORDER BY id", [requestID]).rows
    }

    /// Sequences the intake into the journal, as osmose-journald does, then returns
    /// the request ids of the entries `journal search --patient` finds for `patient`
    /// (``Journal/JournalSearch``, which decodes every hit from its hashed bytes).
    func journalSearch(patient: String) async throws -> [String] {
        let journald = try await Connection.connect("\(database.connectionString) user=osmose_journald", logger: testLogger)
        do {
            var state = try await journald.perform { try JournalDatabase.loadState(on: $0) }
            try await journald.perform { try JournalDatabase.ensurePartition(on: $0, containing: Int64(Date().timeIntervalSince1970 * 1_000_000)) }
            while true {
                let current = state
                let result = try await journald.transaction { connection in
                    try JournalDatabase.appendBatch(on: connection, state: current, limit: 500, now: Int64(Date().timeIntervalSince1970 * 1_000_000), above: 0)
                }
                state = result.state
                if result.appended < 500 { break }
            }
            await journald.close()
        } catch {
            await journald.close()
            throw error
        }
        let search = JournalSearch(patientID: UUID(uuidString: patient)!, limit: 100_000)
        return try await admin.perform { try search.entries(on: $0) }.map(\.requestID)
    }

    /// Row counts of the care tables, to check that a refused request wrote nothing.
    func careRowCounts() async throws -> [Int] {
        try await admin.query(
            """
            SELECT (SELECT count(*) FROM care.patients) AS p, (SELECT count(*) FROM care.episodes) AS e,
                   (SELECT count(*) FROM care.transmissions) AS t, (SELECT count(*) FROM care.record_versions) AS v,
                   (SELECT count(*) FROM care.episode_teams) AS s
            """
        ).rows[0].values.map { Int($0 ?? "0") ?? 0 }
    }

    // MARK: Fixtures through the API

    func createPatient(_ token: String, lastName: String = "Martin", firstName: String = "Léa", birthDate: String = "1990-05-17", ins: String? = nil) async throws -> String {
        let insField = ins.map { #","ins":"\#($0)""# } ?? ""
        let reply = try await request(
            "POST", "/v1/patients", token: token,
            body: #"{"last_name":"\#(lastName)","first_name":"\#(firstName)","birth_date":"\#(birthDate)","sex":"female"\#(insField)}"#)
        guard reply.status == 201, let id = reply.object["id"] as? String else { throw TestEnvironmentError("patient not created: \(reply.text)") }
        return id
    }

    func createEpisode(_ token: String, patient: String, reason: String = "Agitation, propos suicidaires") async throws -> String {
        let reply = try await request("POST", "/v1/episodes", token: token, body: #"{"patient_id":"\#(patient)","arrival_mode":"ambulance","reason":"\#(reason)","worrying":true}"#)
        guard reply.status == 201, let id = reply.object["id"] as? String else { throw TestEnvironmentError("episode not created: \(reply.text)") }
        return id
    }

    func createTransmission(_ token: String, episode: String, body: String = "Entretien de crise en cours", addressedTo: String? = nil) async throws -> String {
        let addressed = addressedTo.map { #","addressed_team":"\#($0)""# } ?? ""
        let reply = try await request("POST", "/v1/episodes/\(episode)/transmissions", token: token, body: #"{"body":"\#(body)"\#(addressed)}"#)
        guard reply.status == 201, let id = reply.object["id"] as? String else { throw TestEnvironmentError("transmission not created: \(reply.text)") }
        return id
    }
}

/// The port the server bound, set once from Hummingbird's callback.
final class PortBox: Sendable {
    private let port = Locked<Int?>(nil)
    func set(_ value: Int) { port.withLock { $0 = value } }
    var value: Int? { port.withLock { $0 } }
}
