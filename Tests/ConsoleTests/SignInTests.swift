import Foundation
import HTTPTypes
import Journal
import Store
import Testing
import TestSupport

/// Sign-in in two steps, enrolment, recovery codes, sign-out, lockout, CSRF and the
/// session cookie, over real HTTP against a real database.
@Suite("Console sign-in")
struct SignInTests {
    @Test("first sign-in enrols TOTP with a QR code and gives ten recovery codes; later sign-ins need password and code")
    func enrolmentThenSignIn() async throws {
        try await ConsoleHarness.with("console_signin") { harness in
            let browser = Browser(harness)
            let first = try await browser.signInWithPassword(ConsoleHarness.sysadmin)
            #expect(first.status == .seeOther)
            #expect(first.location == "/connexion/enrolement")
            // Password alone opens no page.
            #expect(try await browser.get("/").location == "/connexion")
            let enrolment = try await browser.get("/connexion/enrolement")
            #expect(enrolment.text.contains("<svg"), "the QR code is inline SVG")
            let (seed, codes) = try await browser.enrol(ConsoleHarness.sysadmin)
            #expect(codes.count == 10)
            #expect(Set(codes).count == 10)
            let home = try await browser.get("/")
            #expect(home.status == .ok)
            #expect(home.text.contains("/admin/sauvegardes"))

            let again = Browser(harness)
            let signedIn = try await again.signIn(ConsoleHarness.sysadmin, seed: seed)
            #expect(signedIn.status == .seeOther)
            #expect(signedIn.location == "/")
            #expect(try await again.get("/admin/services").status == .ok)
        }
    }

    @Test("a wrong code is refused, a code is accepted once, a recovery code works once")
    func secondFactorRefusals() async throws {
        try await ConsoleHarness.with("console_codes") { harness in
            let (seed, codes) = try await Browser(harness).enrol(ConsoleHarness.officer)
            let browser = Browser(harness)
            harness.clock.advance(seconds: 30)
            _ = try await browser.signInWithPassword(ConsoleHarness.officer)
            let page = try await browser.get("/connexion/code")
            let csrf = try #require(page.hidden("csrf"))
            let rightCode = browser.code(seed)
            let wrongCode = String(format: "%06d", (Int(rightCode)! + 1) % 1_000_000)
            let wrong = try await browser.post("/connexion/code", ["csrf": csrf, "code": wrongCode])
            #expect(wrong.status == .unauthorized)
            #expect(wrong.text.contains("Code incorrect"))
            #expect(try await browser.get("/").location == "/connexion", "a wrong code opens nothing")
            #expect(try await browser.post("/connexion/code", ["csrf": csrf, "code": rightCode]).location == "/")

            // The same code again, within its 30 seconds, on another browser: refused.
            let replay = Browser(harness)
            _ = try await replay.signInWithPassword(ConsoleHarness.officer)
            let replayCSRF = try #require(try await replay.get("/connexion/code").hidden("csrf"))
            #expect(try await replay.post("/connexion/code", ["csrf": replayCSRF, "code": rightCode]).status == .unauthorized)
            // A recovery code instead: accepted once.
            #expect(try await replay.post("/connexion/code", ["csrf": replayCSRF, "code": codes[3].lowercased()]).location == "/")
            let third = Browser(harness)
            _ = try await third.signInWithPassword(ConsoleHarness.officer)
            let thirdCSRF = try #require(try await third.get("/connexion/code").hidden("csrf"))
            #expect(try await third.post("/connexion/code", ["csrf": thirdCSRF, "code": codes[3]]).status == .unauthorized)

            let events = try await harness.consoleEvents().filter { try $0.string("action") == "login" }
            #expect(try events.filter { try $0.string("result") == "denied" }.map { try $0.optionalString("reason") }.contains("staff.invalid_second_factor"))
        }
    }

    @Test("five failed steps lock the account, and the lock holds with the right password")
    func lockout() async throws {
        try await ConsoleHarness.with("console_lockout") { harness in
            let browser = Browser(harness)
            for _ in 0..<5 {
                #expect(try await browser.signInWithPassword(ConsoleHarness.dpo, password: "not the password at all").status == .unauthorized)
            }
            let locked = try await browser.signInWithPassword(ConsoleHarness.dpo)
            #expect(locked.status == .unauthorized)
            #expect(locked.text.contains("verrouillé"))
        }
    }

    @Test("a forged CSRF token is refused on every form; the sign-in form checks its own token")
    func forgedCSRF() async throws {
        try await ConsoleHarness.with("console_csrf") { harness in
            let (seed, _) = try await Browser(harness).enrol(ConsoleHarness.officer)
            let browser = Browser(harness)
            try await browser.signIn(ConsoleHarness.officer, seed: seed)
            let forged = String(repeating: "A", count: 43)
            let search = try await browser.post("/journal/recherche", ["csrf": forged, "patient": ""])
            #expect(search.status == .forbidden)
            #expect(!search.text.contains("Entrées trouvées"))
            let signOut = try await browser.post("/deconnexion", ["csrf": forged])
            #expect(signOut.status == .forbidden)
            #expect(try await browser.get("/").status == .ok, "the forged sign-out ended nothing")
            #expect(try await browser.post("/journal/recherche", ["patient": ""]).status == .forbidden, "a missing token is refused too")

            let stranger = Browser(harness)
            let signIn = try await stranger.post("/connexion", ["form_token": forged, "username": ConsoleHarness.officer, "password": ConsoleHarness.password])
            #expect(signIn.status == .forbidden)
            let refusals = try await harness.consoleEvents().filter { try $0.optionalString("reason") == "console.csrf_rejected" }
            #expect(refusals.count == 4)
        }
    }

    @Test("after sign-out the session's cookie opens nothing, even replayed")
    func replayAfterSignOut() async throws {
        try await ConsoleHarness.with("console_replay") { harness in
            let (seed, _) = try await Browser(harness).enrol(ConsoleHarness.dpo)
            let browser = Browser(harness)
            try await browser.signIn(ConsoleHarness.dpo, seed: seed)
            let token = try #require(browser.sessionToken)
            #expect(try await browser.get("/dpo/politiques").status == .ok)
            let out = try await browser.post("/deconnexion", ["csrf": try await browser.csrf()])
            #expect(out.location == "/connexion")
            #expect(browser.sessionToken == nil, "the cookie is cleared")
            browser.setSessionToken(token)
            let replayed = try await browser.get("/dpo/politiques")
            #expect(replayed.status == .seeOther)
            #expect(replayed.location == "/connexion")
            #expect(!replayed.text.contains("Conservation"))
        }
    }

    @Test("cookies are HttpOnly, Secure and SameSite=Strict; every page carries a strict CSP and no script")
    func browserSecurity() async throws {
        try await ConsoleHarness.with("console_headers") { harness in
            let browser = Browser(harness)
            let (seed, _) = try await Browser(harness).enrol(ConsoleHarness.sysadmin)
            let form = try await browser.get("/connexion")
            let signedIn = try await browser.signIn(ConsoleHarness.sysadmin, seed: seed)
            for cookie in form.headers[values: .setCookie] + signedIn.headers[values: .setCookie] {
                #expect(cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("SameSite=Strict"), "\(cookie)")
            }
            for path in ["/", "/admin/sauvegardes", "/admin/cles", "/admin/services", "/compte", "/connexion"] {
                let page = try await browser.get(path)
                let policy = try #require(page.headers[.contentSecurityPolicy])
                #expect(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'") && !policy.contains("script-src"))
                #expect(page.headers[.cacheControl] == "no-store")
                #expect(!page.text.contains("<script"), "\(path) has no script")
                #expect(page.text.contains("<html lang=\"fr\">"))
            }
        }
    }
}
