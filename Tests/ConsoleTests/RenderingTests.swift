@testable import ConsoleService
import Foundation
import Mustache
import Testing
import TestSupport

/// Pages are rendered from dictionaries built once per page (``MustacheTree``), not
/// from the models through `Mirror` on every lookup: the HTML must be the same.
@Suite struct RenderingTests {
    struct Row {
        let name: String
        let note: String?
        let flagged: Bool
        let tags: [String]
    }

    struct Model {
        let title: String
        let subtitle: String?
        let rows: [Row]
        let empty: Bool
        let count: Int
        let nested: Nested?
        /// A sequence Mustache iterates that is not an array.
        var recent: ReversedCollection<[Row]> { rows.reversed() }
        let newest: ReversedCollection<[Row]>
    }

    struct Nested {
        let label: String
        let rows: [Row]
    }

    static let template = """
        <h1>{{title}}</h1>{{#subtitle}}<h2>{{subtitle}}</h2>{{/subtitle}}{{^subtitle}}<h2>{{t.none}}</h2>{{/subtitle}}
        {{#rows}}<p class="{{#flagged}}flag{{/flagged}}">{{name}} {{note}} {{title}} {{t.label}}{{#tags}}<i>{{.}}</i>{{/tags}}{{^note}}[{{subtitle}}]{{/note}}</p>{{/rows}}
        {{^rows}}<p>{{t.empty}}</p>{{/rows}}{{#empty}}E{{/empty}}{{^empty}}N{{/empty}} {{count}}
        {{#nested}}<section>{{label}}{{#rows}}{{name}}/{{label}}/{{note}}{{/rows}}</section>{{/nested}}{{^nested}}no nested{{/nested}}
        <ol>{{#newest}}<li>{{name}}</li>{{/newest}}</ol>
        """

    static func context(_ model: Model) -> PageContext {
        PageContext(t: ["none": "aucun", "label": "libellé", "empty": "vide"], user: nil, csrf: "token", title: "Titre", page: model)
    }

    @Test("a page renders the same from its dictionaries as from its model", arguments: [0, 1, 2, 3])
    func sameHTML(variant: Int) throws {
        let rows = [
            Row(name: "a <b>", note: "n1", flagged: true, tags: ["x", "y"]),
            Row(name: "c", note: nil, flagged: false, tags: []),
        ]
        let models = [
            Model(title: "T", subtitle: "S", rows: rows, empty: false, count: 2, nested: Nested(label: "L", rows: rows), newest: rows.reversed()),
            Model(title: "T", subtitle: nil, rows: rows, empty: true, count: 0, nested: nil, newest: [].reversed()),
            Model(title: "T & U", subtitle: nil, rows: [], empty: false, count: -1, nested: Nested(label: "", rows: []), newest: rows.reversed()),
            Model(title: "", subtitle: "", rows: [rows[1]], empty: true, count: 7, nested: Nested(label: "M", rows: [rows[1]]), newest: [rows[1]].reversed()),
        ]
        let template = try MustacheTemplate(string: "{{#page}}" + Self.template + "{{/page}}")
        let context = Self.context(models[variant])
        let fromModel = template.render(context)
        let fromTree = template.render(MustacheTree.of(context))
        #expect(fromTree == fromModel)
        // The rows found the catalogue by climbing the stack, and the reversed rows were iterated.
        #expect(fromModel.contains("libellé") == !models[variant].rows.isEmpty)
        #expect(fromModel.contains("<li>c</li>") == models[variant].newest.contains { $0.name == "c" })
    }

    /// Every stored property of `value`, found by `Mirror`, is what its own lookup answers.
    static func answersLikeMirror(_ value: some MustacheParent) -> [String] {
        var wrong: [String] = []
        for child in Mirror(reflecting: value).children {
            guard let label = child.label else { continue }
            if "\(value.child(named: label) ?? "nil")" != "\(child.value)" { wrong.append(label) }
        }
        if value.child(named: "no-such-field") != nil { wrong.append("no-such-field") }
        return wrong
    }

    @Test("the rows that answer their own lookups answer every field as Mirror finds it")
    func rowsAnswerLikeMirror() {
        let rows: [any MustacheParent] = [
            Console.EntryRowModel(
                sequence: "1", occurred: "o", user: "u", role: "r", team: "t", action: "a", object: "ob", patient: "p", purpose: "pu", result: "re",
                denied: true),
            Console.RegisterRow(
                number: "1", kind: "k", capacity: "c", received: "r", status: "s", due: "d", left: "l", overdue: true, soon: false, identityChecked: false),
            Console.RegisterRow(
                number: "2", kind: "k", capacity: "c", received: "r", status: "s", due: "d", left: "l", overdue: false, soon: true, identityChecked: false),
            Console.RegisterRow(
                number: "3", kind: "k", capacity: "c", received: "r", status: "s", due: "d", left: "l", overdue: false, soon: false, identityChecked: true),
            Console.Choice(value: "v", label: "l", selected: true), Console.PageLink(href: "h", label: "l", rel: "r"),
            Console.PageButton(page: "2", label: "l"), UserPanel.Link(href: "h", label: "l"),
        ]
        for row in rows {
            #expect(Self.answersLikeMirror(row).isEmpty, "\(type(of: row))")
        }
    }

    @Test("values are escaped as swift-mustache's HTML content type escapes them (2,000 seeded strings)")
    func escapingMatchesTheLibrary() throws {
        var generator = TestSeed.generator(test: "RenderingTests.escapingMatchesTheLibrary")
        let alphabet = Array("ab <>&\"'=/é€😀\n\t;#x")
        let reference = try MustacheTemplate(string: "{{value}}")
        for _ in 0..<2_000 {
            let text = String((0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            #expect(HTMLEscaping().escapeText(text) == reference.render(["value": text]), "\(text.debugDescription)")
        }
        #expect(HTMLEscaping().escapeText("<\u{301}script>") == "&lt;\u{301}script&gt;", "a combining mark does not hide a '<'")
    }

    @Test("every shipped template escapes with it, and a page escapes a value that holds markup")
    func templatesEscape() async throws {
        let directory = PageRenderer.templatesDirectory
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".mustache") }
        #expect(names.count > 20)
        for name in names {
            let text = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
            #expect(text.hasPrefix("{{% CONTENT_TYPE: \(HTMLEscaping.name) }}"), "\(name)")
        }
        let renderer = try await PageRenderer.load()
        let hostile = "<script>alert('x')</script> & \"quoted\""
        let row = Console.EntryRowModel(
            sequence: "7", occurred: "o", user: hostile, role: "r", team: "t", action: "a", object: "ob", patient: "p", purpose: "pu", result: "re", denied: false)
        let model = Console.SearchModel(
            patient: hostile, user: "", team: "", from: "", to: "", actions: [], purposes: [], results: [], searched: true, entries: [row], count: "1",
            limitReached: false, mismatched: [], anyMismatched: false, before: [], after: [], position: "", paged: false)
        let html = renderer.render("journal-search", PageContext(t: renderer.strings, user: nil, csrf: "c", title: hostile, page: model))
        #expect(!html.contains("<script>alert"))
        #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"))
        #expect(html.hasPrefix("<!DOCTYPE html>"))
    }

    @Test("the register and search pages render the same from their dictionaries as from their models")
    func shippedTemplates() async throws {
        let renderer = try await PageRenderer.load()
        let register = Console.RegisterModel(
            statuses: Console.SearchModel.choices(["ouvertes", "closes"], "ouvertes"), kinds: Console.SearchModel.choices(["access"], nil), within: "15",
            rows: (1...3).map {
                Console.RegisterRow(
                    number: "\($0)", kind: "accès", capacity: "patient", received: "1 déc.", status: "ouverte", due: "2 janv.", left: "\($0) j",
                    overdue: $0 == 1, soon: $0 == 2, identityChecked: $0 != 3)
            }, count: "3", overdue: "1", soon: "1", warnDays: "7",
            before: [Console.PageLink(href: "/dpo/demandes?page=1", label: "1", rel: "first")], after: [], position: "Page 2 sur 2", paged: true,
            empty: false)
        let panel = UserPanel(name: "D. P. O.", role: "DPO", links: [.init(href: "/", label: "Accueil")])
        for (template, model) in [("dpo-register", register as Any), ("journal-search", Console.SearchModel.blank as Any)] {
            let context = PageContext(t: renderer.strings, user: panel, csrf: "csrf-token", title: "Titre", page: model)
            let fromModel = try #require(renderer.library.render(context, withTemplate: template))
            #expect(renderer.render(template, context) == fromModel, "\(template)")
            #expect(fromModel.contains("csrf-token"))
        }
    }
}
