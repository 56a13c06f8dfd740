import ConsoleService
import Cryptography
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdOTP
import Journal
import Keyring
import Logging
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NIOCore
import ServiceLifecycle
import Settings
import StaffAccounts
import Store
import TestSupport

/// A clock the tests move, shared by the console's second factor and the codes the
/// tests compute: each sign-in can use a fresh time step (a code is accepted once).
final class TestClock: Sendable {
    private let now = Locked(Date())
    func read() -> Date { now.withLock { $0 } }
    func advance(seconds: TimeInterval) { now.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

/// Log lines the console wrote, to check that none carries personal data.
final class CapturedLog: Sendable {
    private let lines = Locked<[String]>([])
    var text: String { lines.withLock { $0.joined(separator: "\n") } }
    func append(_ line: String) { lines.withLock { $0.append(line) } }
}

struct CapturingLogHandler: LogHandler {
    let log: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        log.append("\(event.level) \(event.message) \(merged)")
    }
}

/// The console served for real over loopback HTTP in this process, against a
/// database of its own; its pool logs in as the restricted osmose_console role,
/// as in production. Three staff accounts exist, none enrolled yet.
struct ConsoleHarness: Sendable {
    let database: TestDatabase
    let admin: Connection
    let clock: TestClock
    let log: CapturedLog
    let client: HTTPClient
    /// The master key the console holds (the keyring is initialised with it), for the DPO's pages; nil unless asked.
    let master: MasterKey?

    static let password = "correct horse battery staple"
    static let dpo = "dpo.ana"
    static let officer = "rssi.bruno"
    static let sysadmin = "admin.chloe"

    static func with(
        _ name: String, keyring: Bool = false, configure: @Sendable (inout SuiteConfiguration) -> Void = { _ in },
        _ body: @escaping @Sendable (ConsoleHarness) async throws -> Void
    ) async throws {
        try await TestDatabase.with(name) { database in
            let admin = try await Connection.connect(database.connectionString, logger: testLogger)
            do {
                try await run(database: database, admin: admin, keyring: keyring, configure: configure, body)
            } catch {
                await admin.close()
                throw error
            }
            await admin.close()
        }
    }

    private static func run(
        database: TestDatabase, admin: Connection, keyring: Bool, configure: @Sendable (inout SuiteConfiguration) -> Void,
        _ body: @escaping @Sendable (ConsoleHarness) async throws -> Void
    ) async throws {
            try await migrate(admin)
            let master = keyring ? try MasterKey.generate() : nil
            if let master { _ = try await DataKeyRing.initialise(on: admin, master: master, createdBy: "tests") }
            let directory = StaffDirectory(actor: .operator("tests", role: .sysadmin))
            for (username, role) in [(dpo, StaffRole.dpo), (officer, .securityOfficer), (sysadmin, .sysadmin)] {
                let account = try NewStaffAccount(username: username, displayName: username, role: role, password: password, costExponent: 10)
                try await admin.transaction { connection in _ = try directory.create(account, on: connection) }
            }
            var configuration = SuiteConfiguration.defaults
            configuration.console.passwordCost = 10
            configuration.paths.policies = repositoryRoot.appendingPathComponent("policies").path
            configure(&configuration)
            let log = CapturedLog()
            let logger = Logger(label: "osmose.console.test") { _ in CapturingLogHandler(log: log) }
            let pool = ConnectionPool(
                configuration: .init(connectionString: "\(database.connectionString) user=osmose_console", applicationName: "osmose-console-test", maximumConnections: 4),
                logger: testLogger)
            let clock = TestClock()
            do {
                let console = try await Console(
                    pool: pool, key: try ConsoleKey(SecretBytes.random(count: 32)), configuration: configuration, logger: logger, masterKey: master,
                    now: { clock.read() })
                let port = PortBox()
                let application = Application(
                    router: console.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                    onServerRunning: { channel in port.set(channel.localAddress?.port ?? 0) }, logger: logger)
                let group = ServiceGroup(configuration: .init(services: [application], logger: testLogger))
                let running = Task { try await group.run() }
                for _ in 0..<500 where port.value == nil { try await Task.sleep(for: .milliseconds(10)) }
                var client: HTTPClient?
                do {
                    guard let bound = port.value else { throw TestEnvironmentError("the console did not start listening") }
                    client = HTTPClient(port: bound)
                    try await body(ConsoleHarness(database: database, admin: admin, clock: clock, log: log, client: client!, master: master))
                } catch {
                    client?.invalidate()
                    await group.triggerGracefulShutdown()
                    _ = try? await running.value
                    throw error
                }
                client?.invalidate()
                await group.triggerGracefulShutdown()
                _ = try? await running.value
            } catch {
                await pool.shutdown()
                throw error
            }
            await pool.shutdown()
    }

    /// The access events the console recorded, oldest first.
    func consoleEvents() async throws -> [Row] {
        try await admin.query("SELECT * FROM journal.intake WHERE source = 'osmose-console' ORDER BY id").rows
    }

    /// Sequences the intake into the journal, as osmose-journald does (without checkpoints).
    func sequenceIntake() async throws {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        try await admin.transaction { connection in try JournalDatabase.ensurePartition(on: connection, containing: now) }
        try await admin.transaction { connection in
            let state = try JournalDatabase.loadState(on: connection)
            _ = try JournalDatabase.appendBatch(on: connection, state: state, limit: 100_000, now: now)
        }
    }
}

/// A browser as far as the console is concerned: it keeps cookies, follows no
/// redirection, and sends forms.
final class Browser: Sendable {
    let harness: ConsoleHarness
    private let cookies = Locked<[String: String]>([:])

    init(_ harness: ConsoleHarness) { self.harness = harness }

    struct Page: Sendable {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let text: String
        var location: String? { headers[.location] }

        /// The value of hidden field `name`.
        func hidden(_ name: String) -> String? { text.firstCapture(#"name="\#(name)" value="([^"]*)""#) }
    }

    var sessionToken: String? { cookies.withLock { $0["osmose_console"] } }
    func setSessionToken(_ token: String?) { cookies.withLock { $0["osmose_console"] = token } }

    func get(_ path: String) async throws -> Page { try await send(path, method: .get, form: nil) }

    func post(_ path: String, _ form: [String: String]) async throws -> Page { try await send(path, method: .post, form: form) }

    func send(_ path: String, method: HTTPRequest.Method, form: [String: String]?) async throws -> Page {
        var headers = HTTPFields()
        let cookie = cookies.withLock { $0.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "; ") }
        if !cookie.isEmpty { headers[.cookie] = cookie }
        headers[.userAgent] = "ConsoleTests"
        var body: Data?
        if let form {
            headers[.contentType] = "application/x-www-form-urlencoded"
            let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
            body = Data(form.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&").utf8)
        }
        let response = try await harness.client.send(path, method: method.rawValue, headers: headers, body: body)
        for field in response.headers[values: .setCookie] {
            let pair = field.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0])
            let value = pair.count > 1 ? String(pair[1]) : ""
            cookies.withLock { if field.contains("Max-Age=0") { $0[name] = nil } else { $0[name] = value } }
        }
        return Page(status: response.status, headers: response.headers, text: response.text)
    }

    /// Signs in with the password; returns the page the console sent the browser to.
    func signInWithPassword(_ username: String, password: String = ConsoleHarness.password) async throws -> Page {
        let form = try await get("/connexion")
        guard let token = form.hidden("form_token") else {
            throw TestEnvironmentError("the sign-in page has no form token: \(form.status) \(form.text.firstCapture(#"<code>([a-z._]+)</code>"#) ?? "")")
        }
        return try await post("/connexion", ["form_token": token, "username": username, "password": password])
    }

    /// Enrols the account (first sign-in) and returns its TOTP seed and recovery codes.
    func enrol(_ username: String) async throws -> (seed: String, recoveryCodes: [String]) {
        let first = try await signInWithPassword(username)
        guard first.location == "/connexion/enrolement" else {
            throw TestEnvironmentError("expected the enrolment, got \(first.status) \(first.location ?? ""): \(first.text.firstCapture(#"<code>([a-z._]+)</code>"#) ?? "")")
        }
        let page = try await get("/connexion/enrolement")
        guard let grouped = page.text.firstCapture(#"id="totp-secret">([A-Z2-7 ]+)<"#), let csrf = page.hidden("csrf") else {
            throw TestEnvironmentError("the enrolment page shows no secret")
        }
        let seed = String(decoding: try base32Decode(grouped.filter { $0 != " " }), as: UTF8.self)
        let done = try await post("/connexion/enrolement", ["csrf": csrf, "code": code(seed)])
        guard done.status == .ok else { throw TestEnvironmentError("enrolment refused: \(done.status)") }
        let codes = done.text.allCaptures(#"<li><code>([A-Z0-9-]{23})</code></li>"#)
        return (seed, codes)
    }

    /// Signs in with the password and a TOTP code (the clock moved to a fresh step first).
    @discardableResult
    func signIn(_ username: String, seed: String) async throws -> Page {
        harness.clock.advance(seconds: 30)
        _ = try await signInWithPassword(username)
        let page = try await get("/connexion/code")
        guard let csrf = page.hidden("csrf") else { throw TestEnvironmentError("the code page has no CSRF token") }
        return try await post("/connexion/code", ["csrf": csrf, "code": code(seed)])
    }

    /// The current TOTP code of `seed`, on the harness's clock.
    func code(_ seed: String) -> String {
        String(format: "%06d", TOTP(secret: seed).compute(date: harness.clock.read()))
    }

    /// The CSRF token of the current session, read from the home page.
    func csrf() async throws -> String {
        guard let token = try await get("/").hidden("csrf") else { throw TestEnvironmentError("the home page has no CSRF token") }
        return token
    }
}

/// The port the server bound, set once from Hummingbird's callback.
final class PortBox: Sendable {
    private let port = Locked<Int?>(nil)
    func set(_ value: Int) { port.withLock { $0 = value } }
    var value: Int? { port.withLock { $0 } }
}

/// HTTP over loopback with URLSession, following no redirection and keeping no
/// cookie of its own (``Browser`` keeps them), so that the tests see each answer.
final class HTTPClient: NSObject, URLSessionTaskDelegate, Sendable {
    let port: Int
    private let session = Locked<URLSession?>(nil)

    init(port: Int) {
        self.port = port
        super.init()
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.httpCookieAcceptPolicy = .never
        session.withLock { $0 = URLSession(configuration: configuration, delegate: self, delegateQueue: nil) }
    }

    struct Response: Sendable {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let text: String
    }

    func send(_ path: String, method: String, headers: HTTPFields, body: Data?) async throws -> Response {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        // HTTPFields keeps each cookie of a `Cookie` header as a field of its own, and
        // addValue would join them with "," (a single cookie to the server): one value
        // per name, as HTTPFields combines it ("; " for cookies).
        for name in Set(headers.map(\.name)) { request.setValue(headers[name], forHTTPHeaderField: name.rawName) }
        request.httpBody = body
        guard let session = session.withLock({ $0 }) else { throw TestEnvironmentError("no session") }
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        var fields = HTTPFields()
        for (name, value) in http.allHeaderFields {
            guard let name = name as? String, let value = value as? String, let fieldName = HTTPField.Name(name) else { continue }
            // Foundation joins repeated headers with ", "; Set-Cookie values hold no comma of their own here.
            if fieldName == .setCookie {
                for cookie in value.components(separatedBy: ", ") { fields.append(HTTPField(name: fieldName, value: cookie)) }
            } else {
                fields[fieldName] = value
            }
        }
        return Response(status: HTTPResponse.Status(code: http.statusCode), headers: fields, text: String(decoding: data, as: UTF8.self))
    }

    /// Ends the session: until then URLSession keeps it and its delegate (this client)
    /// for the life of the process (LeakSanitizer reported every harness's session).
    func invalidate() {
        session.withLock { session in
            session?.invalidateAndCancel()
            session = nil
        }
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
        completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}

/// RFC 4648 base32 (no padding).
func base32Decode(_ text: String) throws -> [UInt8] {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    var buffer = 0
    var bits = 0
    var output: [UInt8] = []
    for character in text {
        guard let value = alphabet.firstIndex(of: character) else { throw TestEnvironmentError("not base32: \(character)") }
        buffer = (buffer << 5) | value
        bits += 5
        if bits >= 8 {
            output.append(UInt8((buffer >> (bits - 8)) & 0xFF))
            bits -= 8
        }
    }
    return output
}

extension String {
    func firstCapture(_ pattern: String) -> String? { allCaptures(pattern).first }

    func allCaptures(_ pattern: String) -> [String] {
        guard let expression = try? NSRegularExpression(pattern: pattern) else { return [] }
        return expression.matches(in: self, range: NSRange(startIndex..., in: self)).compactMap { match in
            Range(match.range(at: 1), in: self).map { String(self[$0]) }
        }
    }
}
