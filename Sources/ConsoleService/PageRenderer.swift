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

    /// Renders `template` with `context`.
    func render(_ template: String, _ context: PageContext) -> String {
        library.render(context, withTemplate: template) ?? text("error_internal")
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
