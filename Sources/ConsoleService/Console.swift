public import Foundation
import HTTPTypes
public import Hummingbird
import Journal
public import Keyring
public import Logging
import NIOCore
public import Settings
public import StaffAccounts
public import Store

/// The console's web pages over the suite's libraries. Every request — page view,
/// form, download, refused or failed — records one access event, and a page exists
/// only once its event is committed: when the journal cannot record the view, the
/// answer is an error page that shows nothing of what was asked (fail closed, as
/// osmose-care). The console holds no SQL of its own for another capability's
/// tables: it calls the same library functions as `osmosectl`.
public struct Console: Sendable {
    let pool: ConnectionPool
    let sessions: StaffSessions
    let secondFactor: SecondFactor
    let renderer: PageRenderer
    let configuration: SuiteConfiguration
    let logger: Logger
    let unitStates: UnitStateReader
    /// The master key, for the DPO's pages that decrypt (the register's personal
    /// data, access packs, plans); nil when the console was given none.
    let masterKey: MasterKey?

    /// Assembles the console.
    /// - Parameters:
    ///   - pool: connections as the osmose_console role.
    ///   - key: the console key that seals the TOTP seeds.
    ///   - configuration: the suite's configuration (the `console` section, the journal's witnesses and keys, the policies).
    ///   - logger: the service's logger (no personal data is ever logged).
    ///   - templatesDirectory: where the templates and the catalogue are (the shipped ones by default).
    ///   - masterKey: the master key that opens the keyring, for the DPO's pages; without it they say so and show nothing.
    ///   - now: the clock of the second factor (tests move it).
    /// - Throws: when the templates or the catalogue cannot be loaded.
    public init(
        pool: ConnectionPool, key: ConsoleKey, configuration: SuiteConfiguration, logger: Logger, templatesDirectory: String? = nil,
        masterKey: MasterKey? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) async throws {
        self.pool = pool
        self.masterKey = masterKey
        let console = configuration.console
        self.sessions = StaffSessions(
            settings: StaffSessionSettings(
                idleTimeout: console.sessionIdle, lifetime: console.sessionLifetime, maximumFailures: console.maximumLoginFailures, lockout: console.lockout),
            costExponent: console.passwordCost)
        self.secondFactor = SecondFactor(key: key, now: now)
        self.renderer = try await PageRenderer.load(directory: templatesDirectory ?? PageRenderer.templatesDirectory)
        self.configuration = configuration
        self.logger = logger
        self.unitStates = UnitStateReader()
    }

    /// Every route of the console.
    public func router() -> Router<ConsoleRequestContext> {
        let router = Router(context: ConsoleRequestContext.self)
        addSignInRoutes(to: router)
        addHomeRoutes(to: router)
        addJournalRoutes(to: router)
        addAdministrationRoutes(to: router)
        addDPORoutes(to: router)
        addSubjectRequestRoutes(to: router)
        addRetentionRoutes(to: router)
        let stylesheet = renderer.stylesheet
        router.get("/static/console.css") { _, _ in
            var fields = HTTPFields.console(contentType: "text/css; charset=utf-8", requestID: "-")
            fields[.cacheControl] = "max-age=3600"
            return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(string: stylesheet)))
        }
        router.get("/health") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        return router
    }

    // MARK: The one fail-closed path

    /// Who may open a page.
    enum Audience: Sendable {
        case anyStaff
        case roles(Set<StaffRole>)

        func admits(_ role: StaffRole) -> Bool {
            switch self {
            case .anyStaff: true
            case .roles(let roles): roles.contains(role)
            }
        }
    }

    /// A request after its checks: the session, the form (for a POST, whose CSRF token matched) and the audit.
    struct Checked: Sendable {
        let session: StaffSession
        let token: String
        let form: FormFields
        let audit: ConsoleAudit
    }

    /// Answers a signed-in page or action: authenticates the session cookie (a page
    /// needs both factors), checks the role and, for a POST, the CSRF token; runs
    /// `produce`; commits the event; only then renders. A refusal records its own
    /// event; when no event can be recorded the answer is 503 and nothing else.
    func serve(
        _ request: Request, _ context: ConsoleRequestContext, _ action: AccessAction, _ objectType: String, audience: Audience,
        _ produce: @escaping @Sendable (Checked) async throws -> ConsoleView
    ) async -> Response {
        let audit = audit(request, context, action, objectType)
        // The signed-in session's CSRF token, for the sign-out form of an error page.
        var csrf: String?
        do {
            let form = try await readForm(request)
            guard let token = ConsoleCookie.value(ConsoleCookie.session, in: request) else {
                return await refuse(audit, .denied(reason: "console.no_session"), redirect: "/connexion")
            }
            let sessions = self.sessions
            let session: StaffSession
            do {
                session = try await pool.withConnection { connection in try await connection.perform { try sessions.authenticate(token: token, on: $0) } }
            } catch let error as StaffError {
                return await refuse(audit, .denied(reason: error.code.rawValue), redirect: "/connexion", cookies: [ConsoleCookie.clear(ConsoleCookie.session)])
            }
            audit.identify(session.principal)
            guard session.stage == .complete else {
                return await refuse(audit, .denied(reason: "console.second_factor_required"), redirect: "/connexion")
            }
            csrf = session.csrfToken
            guard audience.admits(session.principal.role) else { throw ConsolePageError.forbidden }
            if request.method == .post, !session.acceptsCSRF(form["csrf"]) { throw ConsolePageError.csrf }
            let view = try await produce(Checked(session: session, token: token, form: form, audit: audit))
            if !audit.isRecorded { try await record(audit.event(.success)) }
            return respond(view, audit: audit, session: session)
        } catch let error as ConsolePageError {
            return await refuse(audit, error, session: audit.principal, csrf: csrf)
        } catch let error as StaffError {
            logger.notice("request refused", metadata: ["osmose.error": "\(error.code)", "osmose.request": "\(audit.requestID)"])
            return await refuse(audit, ConsolePageError(code: error.code.rawValue, status: .badRequest, messageKey: "error_internal", denied: false), session: audit.principal, csrf: csrf)
        } catch {
            // The data was read but its event could not be committed, or the read failed: nothing is shown.
            logger.error("request failed closed", metadata: ["osmose.error": "\(Self.redacted(error))", "osmose.request": "\(audit.requestID)"])
            return await refuse(audit, ConsolePageError.journalUnavailable, session: audit.principal, csrf: csrf)
        }
    }

    /// Records a refusal's event and shows the error page (no data of the request's).
    func refuse(_ audit: ConsoleAudit, _ error: ConsolePageError, session principal: StaffPrincipal?, csrf: String? = nil) async -> Response {
        do {
            try await record(audit.event(error.denied ? .denied(reason: error.code) : .error(reason: error.code)))
            return errorPage(error, audit: audit, principal: principal, csrf: csrf)
        } catch {
            logger.error("access event could not be recorded", metadata: ["osmose.error": "\(Self.redacted(error))", "osmose.request": "\(audit.requestID)"])
            return errorPage(.journalUnavailable, audit: audit, principal: nil)
        }
    }

    /// Records a refusal's event and sends the browser to `location` (the sign-in page).
    func refuse(_ audit: ConsoleAudit, _ outcome: ConsoleAudit.Outcome, redirect location: String, cookies: [String] = []) async -> Response {
        do {
            try await record(audit.event(outcome))
            return respond(.redirect(location, cookies: cookies), audit: audit, session: nil)
        } catch {
            logger.error("access event could not be recorded", metadata: ["osmose.error": "\(Self.redacted(error))", "osmose.request": "\(audit.requestID)"])
            return errorPage(.journalUnavailable, audit: audit, principal: nil)
        }
    }

    /// Commits `event` in a transaction of its own.
    func record(_ event: AccessEvent) async throws {
        try await pool.transaction { connection in try connection.record(event) }
    }

    /// An error's description safe for the log: stable codes only (``Store/StoreError``'s never quotes values).
    static func redacted(_ error: any Error) -> String {
        switch error {
        case let error as StoreError: error.description
        case let error as StaffError: error.code.rawValue
        case let error as JournalError: error.description
        default: String(describing: type(of: error))
        }
    }

    func audit(_ request: Request, _ context: ConsoleRequestContext, _ action: AccessAction, _ objectType: String) -> ConsoleAudit {
        ConsoleAudit(action: action, objectType: objectType, clientIP: clientAddress(request, context), userAgent: request.headers[.userAgent])
    }

    func clientAddress(_ request: Request, _ context: ConsoleRequestContext) -> String? {
        let peer = context.peerAddress
        if configuration.console.trustProxy, peer == nil || peer == "127.0.0.1" || peer == "::1",
            let forwarded = request.headers[.forwardedFor]?.split(separator: ",").last
        {
            let candidate = forwarded.trimmingCharacters(in: .whitespaces)
            if candidate.range(of: #"^[0-9a-fA-F:.]{2,45}$"#, options: .regularExpression) != nil { return candidate }
        }
        return peer
    }

    /// The form of a POST (at most 64 KiB), else an empty one.
    func readForm(_ request: Request) async throws -> FormFields {
        guard request.method == .post else { return FormFields([]) }
        do {
            let buffer = try await request.body.collect(upTo: 65_536)
            return FormFields(Array(buffer.readableBytesView))
        } catch {
            throw ConsolePageError.tooLarge
        }
    }

    // MARK: Responses

    func respond(_ view: ConsoleView, audit: ConsoleAudit, session: StaffSession?) -> Response {
        switch view.body {
        case .redirect(let location):
            var fields = HTTPFields.console(contentType: "text/plain; charset=utf-8", requestID: audit.requestID)
            fields[.location] = location
            for cookie in view.cookies { fields.append(HTTPField(name: .setCookie, value: cookie)) }
            return Response(status: view.status, headers: fields)
        case .download(let filename, let contentType, let bytes):
            var fields = HTTPFields.console(contentType: contentType, requestID: audit.requestID)
            fields[.contentDisposition] = "attachment; filename=\"\(filename)\""
            return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        case .page(let template, let model):
            let html = renderer.render(
                template,
                PageContext(
                    t: renderer.strings, user: session.flatMap { $0.stage == .complete ? userPanel($0.principal) : nil }, csrf: session?.csrfToken,
                    title: renderer.text(view.titleKey), page: model))
            var fields = HTTPFields.console(contentType: "text/html; charset=utf-8", requestID: audit.requestID)
            for cookie in view.cookies { fields.append(HTTPField(name: .setCookie, value: cookie)) }
            return Response(status: view.status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: html)))
        }
    }

    /// The error page: the message of the error's code and the request id to quote, nothing else.
    func errorPage(_ error: ConsolePageError, audit: ConsoleAudit, principal: StaffPrincipal?, csrf: String? = nil) -> Response {
        struct Model: Sendable {
            let message: String
            let code: String
            let requestID: String
        }
        let html = renderer.render(
            "error",
            PageContext(
                t: renderer.strings, user: principal.map(userPanel), csrf: csrf, title: renderer.text("error_title"),
                page: Model(message: renderer.text(error.messageKey), code: error.code, requestID: audit.requestID)))
        return Response(
            status: error.status, headers: .console(contentType: "text/html; charset=utf-8", requestID: audit.requestID),
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// The header's panel: the person and the sections of their role.
    func userPanel(_ principal: StaffPrincipal) -> UserPanel {
        var links: [UserPanel.Link] = [.init(href: "/", label: renderer.text("nav_home"))]
        switch principal.role {
        case .dpo:
            links += [
                .init(href: "/dpo/demandes", label: renderer.text("nav_requests")), .init(href: "/dpo/conservation", label: renderer.text("nav_retention")),
                .init(href: "/dpo/conservation/gels", label: renderer.text("nav_holds")),
                .init(href: "/dpo/conservation/certificats", label: renderer.text("nav_certificates")),
                .init(href: "/dpo/politiques", label: renderer.text("nav_policies")),
            ]
        case .securityOfficer:
            links += [
                .init(href: "/journal", label: renderer.text("nav_journal_status")), .init(href: "/journal/recherche", label: renderer.text("nav_journal_search")),
                .init(href: "/journal/alertes", label: renderer.text("nav_alerts")),
            ]
        case .sysadmin:
            links += [
                .init(href: "/admin/sauvegardes", label: renderer.text("nav_backups")), .init(href: "/admin/cles", label: renderer.text("nav_keys")),
                .init(href: "/admin/services", label: renderer.text("nav_daemons")),
            ]
        }
        links.append(.init(href: "/compte", label: renderer.text("nav_account")))
        return UserPanel(name: principal.displayName, role: renderer.text("role_" + principal.role.rawValue), links: links)
    }
}
