import Foundation
import Mustache

/// The console's pages: Mustache templates (`Templates/*.mustache`, one layout that
/// every page extends) and the one catalogue of interface strings
/// (`Templates/catalogue.fr.json`, French; an English catalogue can follow beside it).
/// Values are HTML-escaped by `{{…}}`; no template uses the unescaped form for data.
struct PageRenderer: Sendable {
    let library: MustacheLibrary
    /// The interface strings, by key.
    let strings: [String: String]
    /// The one stylesheet (`Templates/console.css`).
    let stylesheet: String

    /// Loads the templates and the catalogue shipped with the service.
    /// - Throws: ``ConsoleStartError`` when they cannot be read.
    static func load(directory: String = PageRenderer.templatesDirectory) async throws -> PageRenderer {
        let library: MustacheLibrary
        // Before parsing: every template names this content type (`{{% CONTENT_TYPE: OSMOSE_HTML }}`).
        MustacheContentTypes.register(HTMLEscaping(), named: HTMLEscaping.name)
        do {
            library = try await MustacheLibrary(directory: directory)
        } catch {
            throw ConsoleStartError("the console's templates in \(directory) cannot be loaded: \(error)")
        }
        let path = directory + "/catalogue.fr.json"
        guard let data = FileManager.default.contents(atPath: path),
            let strings = try? JSONDecoder().decode([String: String].self, from: data)
        else { throw ConsoleStartError("the catalogue \(path) is missing or is not a JSON object of strings") }
        guard let css = FileManager.default.contents(atPath: directory + "/console.css") else {
            throw ConsoleStartError("the stylesheet \(directory)/console.css is missing")
        }
        return PageRenderer(library: library, strings: strings, stylesheet: String(decoding: css, as: UTF8.self))
    }

    /// Where the templates are: beside the executable (`osmose_ConsoleService.resources`), as SwiftPM installs resources.
    static var templatesDirectory: String {
        (Bundle.module.resourcePath ?? Bundle.module.bundlePath) + "/Templates"
    }

    /// The string of `key`; the key itself when the catalogue lacks it (a test checks every key is present).
    func text(_ key: String) -> String { strings[key] ?? key }

    /// Renders `template` with `context`, turned into dictionaries first (``MustacheTree``).
    func render(_ template: String, _ context: PageContext) -> String {
        library.render(MustacheTree.of(context), withTemplate: template) ?? text("error_internal")
    }
}

/// A page's model as dictionaries and arrays, built once per page.
///
/// swift-mustache finds a name in a struct through `Mirror` on every lookup: it
/// reflects the value, builds its list of children and scans it, and does so for
/// each context on the stack until one has the name. A register page of 50 rows
/// made thousands of such lookups, and rendering took 88 % of the console's CPU under
/// load (perf, 2026-12-05). A dictionary (`MustacheParent`) answers in one hash
/// lookup. The lookups find the same values: a struct becomes a dictionary of its
/// stored properties, an array an array, a nil optional is left out (as Mirror's
/// lookup reports it missing, so the search climbs the stack the same way); strings,
/// numbers, booleans, dictionaries and any value with its own description (a date,
/// an id) are kept as they are.
enum MustacheTree {
    static func of(_ value: Any) -> Any {
        switch value {
        // Values that answer their own lookups (a row of MustacheRows.swift, a
        // dictionary such as the catalogue) or that Mustache renders by their own
        // protocol, and the plain values: kept as they are.
        case is any MustacheParent, is String, is Bool, is Int, is MustacheLambda, is MustacheTemplate, is any MustacheCustomRenderable,
            is any MustacheTransformable:
            return value
        // What Mustache iterates as a section (an array, a set, a reversed collection), as an array, in its order.
        case let sequence as any MustacheSequence:
            return elements(sequence)
        default:
            break
        }
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .optional:
            return mirror.children.first.map { of($0.value) } ?? value
        case .struct, .class:
            if value is any CustomStringConvertible { return value }
            var fields: [String: Any] = [:]
            for child in mirror.children {
                guard let label = child.label else { continue }
                let childMirror = Mirror(reflecting: child.value)
                if childMirror.displayStyle == .optional {
                    guard let wrapped = childMirror.children.first else { continue }
                    fields[label] = of(wrapped.value)
                } else {
                    fields[label] = of(child.value)
                }
            }
            return fields
        default:
            // Anything else (an enum, a tuple, a collection Mustache does not iterate) as Mirror would see it.
            return value
        }
    }

    private static func elements(_ sequence: some Sequence) -> [Any] {
        sequence.map { of($0) }
    }
}

/// What every page's template sees: the catalogue as `t`, the signed-in person and
/// their sections as `user`, the session's CSRF token, the page's title, and the
/// page's own model as `page`.
struct PageContext {
    let t: [String: String]
    let user: UserPanel?
    let csrf: String?
    let title: String
    let page: Any
}

/// The signed-in person and the sections their role opens, for the layout's header.
struct UserPanel: Sendable {
    struct Link: Sendable {
        let href: String
        let label: String
    }

    let name: String
    let role: String
    let links: [Link]
}

/// A start-up failure of the console (its templates, its key).
struct ConsoleStartError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// HTML escaping of `{{…}}` values, as swift-mustache's own HTML content type
/// escapes them (`<`, `>`, `&`, `"` and `'`), over UTF-8 bytes: a value without any
/// of them (most are) is returned as it is. swift-mustache's version builds a new
/// string Character by Character through a dictionary, 14 % of the console's CPU on
/// a search page (perf, 2026-12-05). Working on bytes, it also escapes a `<` that
/// a combining mark follows, which the Character-wise version leaves as it is.
struct HTMLEscaping: MustacheContentType {
    /// The name templates give it: `{{% CONTENT_TYPE: OSMOSE_HTML }}`.
    static let name = "OSMOSE_HTML"

    /// `text` with `<`, `>`, `&`, `"` and `'` replaced by their HTML entities.
    func escapeText(_ text: String) -> String {
        let bytes = text.utf8
        guard bytes.contains(where: Self.needsEscape) else { return text }
        var escaped: [UInt8] = []
        escaped.reserveCapacity(bytes.count + 32)
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "<"): escaped += "&lt;".utf8
            case UInt8(ascii: ">"): escaped += "&gt;".utf8
            case UInt8(ascii: "&"): escaped += "&amp;".utf8
            case UInt8(ascii: "\""): escaped += "&quot;".utf8
            case UInt8(ascii: "'"): escaped += "&#39;".utf8
            default: escaped.append(byte)
            }
        }
        return String(decoding: escaped, as: UTF8.self)
    }

    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "<") || byte == UInt8(ascii: ">") || byte == UInt8(ascii: "&") || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'")
    }
}
