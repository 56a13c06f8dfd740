import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// What a handler answers: a page (a template and its model), a redirection, or a
/// download. Cookies to set go with it. Built only after the request's event is
/// durable, so a page exists only once its view is journaled.
struct ConsoleView: Sendable {
    enum Body: Sendable {
        case page(template: String, model: any Sendable)
        case redirect(String)
        case download(filename: String, contentType: String, bytes: [UInt8])
    }

    var body: Body
    var status: HTTPResponse.Status = .ok
    var cookies: [String] = []
    /// The page's title key in the catalogue.
    var titleKey: String = "app_name"

    static func page(_ template: String, title: String, _ model: any Sendable = EmptyModel(), status: HTTPResponse.Status = .ok) -> ConsoleView {
        ConsoleView(body: .page(template: template, model: model), status: status, titleKey: title)
    }

    static func redirect(_ location: String, cookies: [String] = []) -> ConsoleView {
        ConsoleView(body: .redirect(location), status: .seeOther, cookies: cookies)
    }
}

/// A page with nothing of its own to show.
struct EmptyModel: Sendable {}

/// A refusal or failure a handler ends with: the page shown (no data of the
/// request's), the status, and the stable code the event records.
struct ConsolePageError: Error, Sendable {
    /// The stable code, journaled as the event's reason (e.g. `console.forbidden`).
    let code: String
    /// The HTTP status.
    let status: HTTPResponse.Status
    /// The catalogue key of the message shown.
    let messageKey: String
    /// True for a refusal (recorded as denied), false for a failure (error).
    let denied: Bool

    static let forbidden = ConsolePageError(code: "console.forbidden", status: .forbidden, messageKey: "error_forbidden", denied: true)
    static let csrf = ConsolePageError(code: "console.csrf_rejected", status: .forbidden, messageKey: "error_csrf", denied: true)
    static let notFound = ConsolePageError(code: "console.not_found", status: .notFound, messageKey: "error_not_found", denied: false)
    static let journalUnavailable = ConsolePageError(code: "journal.unavailable", status: .serviceUnavailable, messageKey: "error_journal_unavailable", denied: false)
    static let internalError = ConsolePageError(code: "internal.error", status: .internalServerError, messageKey: "error_internal", denied: false)
    static let tooLarge = ConsolePageError(code: "request.too_large", status: .contentTooLarge, messageKey: "error_too_large", denied: false)

    static func invalidInput(_ messageKey: String) -> ConsolePageError {
        ConsolePageError(code: "request.invalid_field", status: .badRequest, messageKey: messageKey, denied: false)
    }
}

/// Cookies of the console: the session's, and the sign-in form's double-submit token.
enum ConsoleCookie {
    /// The session token.
    static let session = "osmose_console"
    /// The sign-in form's token, compared with the form's hidden field.
    static let signInForm = "osmose_console_form"

    /// `Set-Cookie` for `value`: never readable by scripts, sent over HTTPS only, never
    /// sent with a request started by another site.
    static func set(_ name: String, _ value: String, maxAge: Int) -> String {
        "\(name)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; Secure; SameSite=Strict"
    }

    /// `Set-Cookie` removing `name`.
    static func clear(_ name: String) -> String {
        "\(name)=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
    }

    /// The value of cookie `name` in the request's `Cookie` headers.
    static func value(_ name: String, in request: Request) -> String? {
        for header in request.headers[values: .cookie] {
            for pair in header.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                    return parts[1].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }
}

/// An `application/x-www-form-urlencoded` body.
struct FormFields: Sendable {
    let values: [String: String]

    init(_ body: [UInt8]) {
        var values: [String: String] = [:]
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]) else { continue }
            values[name] = parts.count > 1 ? Self.decode(parts[1]) ?? "" : ""
        }
        self.values = values
    }

    subscript(_ name: String) -> String? { values[name] }

    /// The field, trimmed, or nil when absent or blank.
    func text(_ name: String) -> String? {
        guard let value = values[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { return nil }
        return value
    }

    static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}

extension HTTPFields {
    /// The headers of every console response: no caching, no sniffing, no framing,
    /// no referrer, and a Content-Security-Policy that allows no script at all and
    /// styles and images from the console only.
    static func console(contentType: String, requestID: String) -> HTTPFields {
        var fields = HTTPFields()
        fields[.contentType] = contentType
        fields[.cacheControl] = "no-store"
        fields[.contentSecurityPolicy] = ConsoleSecurity.contentSecurityPolicy
        fields[.xContentTypeOptions] = "nosniff"
        fields[.xFrameOptions] = "DENY"
        fields[.referrerPolicy] = "no-referrer"
        fields[.crossOriginOpenerPolicy] = "same-origin"
        fields[.permissionsPolicy] = "camera=(), microphone=(), geolocation=()"
        fields[.osmoseRequestID] = requestID
        return fields
    }
}

/// The console's browser-side security settings, in one place.
enum ConsoleSecurity {
    /// No script from anywhere, no plugin, no framing, forms only to the console.
    static let contentSecurityPolicy =
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}

extension HTTPField.Name {
    static let xContentTypeOptions = HTTPField.Name("X-Content-Type-Options")!
    static let xFrameOptions = HTTPField.Name("X-Frame-Options")!
    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!
    static let crossOriginOpenerPolicy = HTTPField.Name("Cross-Origin-Opener-Policy")!
    static let permissionsPolicy = HTTPField.Name("Permissions-Policy")!
    static let osmoseRequestID = HTTPField.Name("Osmose-Request-Id")!
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
}
