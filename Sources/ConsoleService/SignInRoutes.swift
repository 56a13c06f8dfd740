import Cryptography
import Foundation
import Hummingbird
import Journal
import QRCode
import StaffAccounts
import Store

extension Console {
    /// Sign-in in two steps (password, then a TOTP code or a recovery code), the
    /// enrolment of the second factor at the first sign-in, and sign-out. Each
    /// attempt records one event, committed with what it changed (the failure count,
    /// the session).
    func addSignInRoutes(to router: Router<ConsoleRequestContext>) {
        let console = self
        router.get("/connexion") { request, context in await console.signInPage(request, context) }
        router.post("/connexion") { request, context in await console.signIn(request, context) }
        router.get("/connexion/code") { request, context in await console.secondFactorPage(request, context) }
        router.post("/connexion/code") { request, context in await console.secondFactorStep(request, context) }
        router.get("/connexion/enrolement") { request, context in await console.enrolmentPage(request, context, code: nil) }
        router.post("/connexion/enrolement") { request, context in
            await console.enrolmentPage(request, context, code: try? await console.readForm(request))
        }
        router.post("/deconnexion") { request, context in await console.signOut(request, context) }
    }

    struct SignInModel: Sendable {
        let formToken: String
        let error: String?
        let username: String?
    }

    struct SecondFactorModel: Sendable {
        let error: String?
    }

    struct EnrolmentModel: Sendable {
        let qrCode: String
        let secret: String
        let error: String?
    }

    struct RecoveryCodesModel: Sendable {
        let codes: [String]
    }

    /// The sign-in form, with a fresh double-submit token (cookie and hidden field).
    func signInPage(_ request: Request, _ context: ConsoleRequestContext, error: String? = nil, username: String? = nil, status: HTTPResponse.Status = .ok) async
        -> Response
    {
        let audit = audit(request, context, .read, "console-sign-in-page")
        do {
            let token = try StaffSessionsToken.make()
            try await record(audit.event(error == nil ? .success : .denied(reason: "staff.invalid_credentials")))
            var view = ConsoleView.page("sign-in", title: "sign_in_title", SignInModel(formToken: token, error: error, username: username), status: status)
            view.cookies = [ConsoleCookie.set(ConsoleCookie.signInForm, token, maxAge: 3600)]
            return respond(view, audit: audit, session: nil)
        } catch {
            logger.error("access event could not be recorded", metadata: ["osmose.error": "\(Self.redacted(error))", "osmose.request": "\(audit.requestID)"])
            return errorPage(.journalUnavailable, audit: audit, principal: nil)
        }
    }

    func signIn(_ request: Request, _ context: ConsoleRequestContext) async -> Response {
        let audit = audit(request, context, .login, "console-session")
        do {
            let form = try await readForm(request)
            guard let cookie = ConsoleCookie.value(ConsoleCookie.signInForm, in: request), let field = form["form_token"],
                ConstantTime.equals(Array(cookie.utf8), Array(field.utf8))
            else { throw ConsolePageError.csrf }
            let username = JournalText.bounded(form.text("username") ?? "", to: JournalText.usernameLimit)
            let password = form["password"] ?? ""
            let sessions = self.sessions
            let outcome = try await pool.transaction { connection -> Result<OpenedSession, StaffError> in
                let outcome = try sessions.signIn(username: username, password: password, on: connection)
                if let principal = outcome.principal { audit.identify(principal) } else { audit.attempted(username: username) }
                switch outcome.result {
                case .success(let opened):
                    audit.note(opened.session.stage == .enrolment ? "password accepted; enrolment awaited" : "password accepted; second factor awaited")
                    try connection.record(audit.event(.success))
                case .failure(let error):
                    try connection.record(audit.event(.denied(reason: error.code.rawValue)))
                }
                return outcome.result
            }
            switch outcome {
            case .success(let opened):
                let next = opened.session.stage == .enrolment ? "/connexion/enrolement" : "/connexion/code"
                let window = Int(StaffSessions.seconds(sessions.settings.secondFactorWindow))
                return respond(
                    .redirect(next, cookies: [ConsoleCookie.set(ConsoleCookie.session, opened.token, maxAge: window), ConsoleCookie.clear(ConsoleCookie.signInForm)]),
                    audit: audit, session: nil)
            case .failure(let error):
                let message = renderer.text(error.code == .accountLocked ? "sign_in_locked" : "sign_in_wrong")
                return await signInPage(request, context, error: message, username: username, status: .unauthorized)
            }
        } catch let error as ConsolePageError {
            return await refuse(audit, error, session: nil)
        } catch {
            logger.error("sign-in failed closed", metadata: ["osmose.error": "\(Self.redacted(error))", "osmose.request": "\(audit.requestID)"])
            return errorPage(.journalUnavailable, audit: audit, principal: nil)
        }
    }

    /// The session of a sign-in under way at `stage`, or nil (the browser goes back to the sign-in page).
    func pendingSession(_ request: Request, stage: SessionStage) async throws -> (token: String, session: StaffSession)? {
        guard let token = ConsoleCookie.value(ConsoleCookie.session, in: request) else { return nil }
        let sessions = self.sessions
        guard let session = try? await pool.withConnection({ connection in try await connection.perform { try sessions.authenticate(token: token, on: $0) } }),
            session.stage == stage
        else { return nil }
        return (token, session)
    }

    func secondFactorPage(_ request: Request, _ context: ConsoleRequestContext) async -> Response {
        let audit = audit(request, context, .read, "console-second-factor-page")
        do {
            guard let session = try await pendingSession(request, stage: .secondFactor)?.session else {
                return await refuse(audit, .denied(reason: "console.no_session"), redirect: "/connexion")
            }
            audit.identify(session.principal)
            try await record(audit.event(.success))
            return respond(.page("second-factor", title: "second_factor_title", SecondFactorModel(error: nil)), audit: audit, session: session)
        } catch {
            return errorPage(.journalUnavailable, audit: audit, principal: nil)
        }
    }

    func secondFactorStep(_ request: Request, _ context: ConsoleRequestContext) async -> Response {
        let audit = audit(request, context, .login, "console-session")
        do {
            let form = try await readForm(request)
            guard let pending = try await pendingSession(request, stage: .secondFactor) else {
                return await refuse(audit, .denied(reason: "console.no_session"), redirect: "/connexion")
            }
            let (token, session) = pending
            audit.identify(session.principal)
            guard session.acceptsCSRF(form["csrf"]) else { throw ConsolePageError.csrf }
            let code = form.text("code") ?? ""
            let (sessions, secondFactor, principal) = (self.sessions, self.secondFactor, session.principal)
            let outcome = try await pool.transaction { connection -> Result<OpenedSession, StaffError> in
                if try sessions.isLocked(staffID: principal.id, on: connection) {
                    try sessions.close(token: token, on: connection)
                    try connection.record(audit.event(.denied(reason: StaffError.Code.accountLocked.rawValue)))
                    return .failure(StaffError(.accountLocked, "locked"))
                }
                do {
                    try secondFactor.verify(for: principal, code: code, on: connection)
                } catch let error as StaffError where error.code == .invalidSecondFactor {
                    if try sessions.recordFailure(staffID: principal.id, on: connection) {
                        try sessions.close(token: token, on: connection)
                        try connection.record(audit.event(.denied(reason: StaffError.Code.accountLocked.rawValue)))
                        return .failure(StaffError(.accountLocked, "locked"))
                    }
                    try connection.record(audit.event(.denied(reason: error.code.rawValue)))
                    return .failure(error)
                }
                audit.note("signed in: password and second factor")
                let opened = try sessions.complete(replacing: token, for: principal, on: connection)
                try connection.record(audit.event(.success))
                return .success(opened)
            }
            switch outcome {
            case .success(let opened):
                return respond(.redirect("/", cookies: [sessionCookie(opened.token)]), audit: audit, session: nil)
            case .failure(let error) where error.code == .accountLocked:
                return await signInPage(request, context, error: renderer.text("sign_in_locked"), status: .unauthorized)
            case .failure:
                return respond(
                    .page("second-factor", title: "second_factor_title", SecondFactorModel(error: renderer.text("second_factor_wrong")), status: .unauthorized),
                    audit: audit, session: session)
            }
        } catch let error as ConsolePageError {
            return await refuse(audit, error, session: nil)
        } catch {
            logger.error("second factor failed closed", metadata: ["osmose.error": "\(Self.redacted(error))", "osmose.request": "\(audit.requestID)"])
            return errorPage(.journalUnavailable, audit: audit, principal: nil)
        }
    }

    /// The enrolment page (GET) and its confirmation (POST, `code` holding the form).
    func enrolmentPage(_ request: Request, _ context: ConsoleRequestContext, code form: FormFields?) async -> Response {
        let audit = audit(request, context, form == nil ? .read : .login, form == nil ? "console-enrolment-page" : "console-session")
        do {
            guard let pending = try await pendingSession(request, stage: .enrolment) else {
                return await refuse(audit, .denied(reason: "console.no_session"), redirect: "/connexion")
            }
            let (token, session) = pending
            audit.identify(session.principal)
            let (sessions, secondFactor, principal) = (self.sessions, self.secondFactor, session.principal)
            if request.method == .post {
                guard let form else { throw ConsolePageError.tooLarge }
                guard session.acceptsCSRF(form["csrf"]) else { throw ConsolePageError.csrf }
                let code = form.text("code") ?? ""
                let outcome = try await pool.transaction { connection -> Result<(OpenedSession, [String]), StaffError> in
                    do {
                        let codes = try secondFactor.confirm(for: principal, code: code, on: connection)
                        audit.note("second factor enrolled; signed in")
                        let opened = try sessions.complete(replacing: token, for: principal, on: connection)
                        try connection.record(audit.event(.success))
                        return .success((opened, codes))
                    } catch let error as StaffError where error.code == .invalidSecondFactor {
                        _ = try sessions.recordFailure(staffID: principal.id, on: connection)
                        try connection.record(audit.event(.denied(reason: error.code.rawValue)))
                        return .failure(error)
                    }
                }
                if case .success(let (opened, codes)) = outcome {
                    var view = ConsoleView.page("recovery-codes", title: "recovery_codes_title", RecoveryCodesModel(codes: codes))
                    view.cookies = [sessionCookie(opened.token)]
                    return respond(view, audit: audit, session: opened.session)
                }
            }
            let enrolment = try await pool.transaction { connection in
                let enrolment = try secondFactor.begin(for: principal, on: connection)
                if request.method == .get { try connection.record(audit.event(.success)) }
                return enrolment
            }
            let qr = try QRCode(encoding: enrolment.authenticatorURL).svg(size: 264, title: renderer.text("enrolment_qr_alt"))
            let model = EnrolmentModel(qrCode: qr, secret: Self.grouped(enrolment.base32Secret), error: request.method == .post ? renderer.text("second_factor_wrong") : nil)
            return respond(
                .page("enrolment", title: "enrolment_title", model, status: request.method == .post ? .unauthorized : .ok), audit: audit, session: session)
        } catch let error as ConsolePageError {
            return await refuse(audit, error, session: nil)
        } catch {
            logger.error("enrolment failed closed", metadata: ["osmose.error": "\(Self.redacted(error))", "osmose.request": "\(audit.requestID)"])
            return errorPage(.journalUnavailable, audit: audit, principal: nil)
        }
    }

    func signOut(_ request: Request, _ context: ConsoleRequestContext) async -> Response {
        let audit = audit(request, context, .logout, "console-session")
        do {
            let form = try await readForm(request)
            guard let token = ConsoleCookie.value(ConsoleCookie.session, in: request) else {
                return await refuse(audit, .denied(reason: "console.no_session"), redirect: "/connexion")
            }
            let sessions = self.sessions
            let session = try? await pool.withConnection { connection in try await connection.perform { try sessions.authenticate(token: token, on: $0) } }
            guard let session else {
                return await refuse(audit, .denied(reason: "console.no_session"), redirect: "/connexion", cookies: [ConsoleCookie.clear(ConsoleCookie.session)])
            }
            audit.identify(session.principal)
            guard session.acceptsCSRF(form["csrf"]) else { throw ConsolePageError.csrf }
            try await pool.transaction { connection in
                try sessions.close(token: token, on: connection)
                try connection.record(audit.event(.success))
            }
            return respond(.redirect("/connexion", cookies: [ConsoleCookie.clear(ConsoleCookie.session)]), audit: audit, session: nil)
        } catch let error as ConsolePageError {
            return await refuse(audit, error, session: audit.principal)
        } catch {
            logger.error("sign-out failed closed", metadata: ["osmose.error": "\(Self.redacted(error))", "osmose.request": "\(audit.requestID)"])
            return errorPage(.journalUnavailable, audit: audit, principal: nil)
        }
    }

    /// The cookie of a complete session, living as long as the session may.
    func sessionCookie(_ token: String) -> String {
        ConsoleCookie.set(ConsoleCookie.session, token, maxAge: Int(StaffSessions.seconds(sessions.settings.lifetime)))
    }

    /// A base32 secret in groups of four, easier to type.
    static func grouped(_ secret: String) -> String {
        stride(from: 0, to: secret.count, by: 4).map { start in
            let from = secret.index(secret.startIndex, offsetBy: start)
            return String(secret[from..<(secret.index(from, offsetBy: 4, limitedBy: secret.endIndex) ?? secret.endIndex)])
        }.joined(separator: " ")
    }
}

/// Random tokens for the sign-in form's double submit.
enum StaffSessionsToken {
    static func make() throws -> String {
        Data(try SecureRandom.bytes(count: 32)).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
