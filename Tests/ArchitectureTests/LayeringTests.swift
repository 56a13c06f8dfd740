import Foundation
import Testing
import TestSupport

/// The layering rules of ../shared/design.md and conventions.md, checked on the
/// source tree itself so that a change breaking one fails the suite, not a review.
@Suite("Layering: what each module may contain and import")
struct LayeringTests {
    /// Every Swift file under `Sources/<module>` (or every module when nil), with its text.
    static func sources(in module: String? = nil) throws -> [(path: String, text: String)] {
        let root = repositoryRoot.appendingPathComponent("Sources").path
        let base = module.map { "\(root)/\($0)" } ?? root
        guard let walker = FileManager.default.enumerator(atPath: base) else { throw TestEnvironmentError("cannot list \(base)") }
        var found: [(String, String)] = []
        for case let relative as String in walker where relative.hasSuffix(".swift") {
            let path = "\(base)/\(relative)"
            found.append((String(path.dropFirst(root.count + 1)), try String(contentsOfFile: path, encoding: .utf8)))
        }
        #expect(!found.isEmpty, "no sources under \(base)")
        return found
    }

    /// The lines of `text` matching `pattern`, as `path:line: text`.
    static func matches(_ pattern: String, in files: [(path: String, text: String)]) throws -> [String] {
        let expression = try NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines])
        var hits: [String] = []
        for file in files {
            for (number, line) in file.text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let text = String(line)
                if expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil {
                    hits.append("\(file.path):\(number + 1): \(text.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        return hits
    }

    @Test("The command line only parses, calls and prints: no SQL in OsmoseControl, and no daemon module imported")
    func commandLineHoldsNoSQL() throws {
        let files = try Self.sources(in: "OsmoseControl")
        #expect(try Self.matches(#""(SELECT|INSERT|UPDATE|DELETE|COPY|CREATE|ALTER|GRANT|WITH|TRUNCATE|DROP) "#, in: files) == [])
        #expect(try Self.matches(#"\.(query|execute|copyIn|copyOut)\("#, in: files) == [])
        #expect(try Self.matches(#"^\s*(public |internal |package )?import (KeyService|JournalService|CareService|BackupService|ConsoleService|DaemonRuntime)\b"#, in: files) == [])
    }

    @Test("The console holds no SQL: its pages call the capability libraries, as osmosectl does")
    func consoleHoldsNoSQL() throws {
        let files = try Self.sources(in: "ConsoleService")
        #expect(!files.isEmpty)
        #expect(try Self.matches(#""(SELECT|INSERT|UPDATE|DELETE|COPY|CREATE|ALTER|GRANT|WITH|TRUNCATE|DROP) "#, in: files) == [])
        #expect(try Self.matches(#"\.(query|execute|copyIn|copyOut)\("#, in: files) == [])
    }

    @Test("Keyring does not import Systemd (credentials are loaded where daemons start)")
    func keyringStandsAlone() throws {
        #expect(try Self.matches(#"^\s*(public |internal |package )?import Systemd\b"#, in: try Self.sources(in: "Keyring")) == [])
    }

    @Test("No exit() outside the executables: libraries return or throw, executables own the exit status")
    func exitOnlyInExecutables() throws {
        let libraries = try Self.sources().filter { !$0.path.hasPrefix("osmose") }
        #expect(try Self.matches(#"(^|[^A-Za-z_.])exit\("#, in: libraries) == [])
    }

    @Test("Errors with a stable code take their equality, hashing and codes' description from ErrorConventions, not written again")
    func codedErrorsShareTheirShape() throws {
        let files = try Self.sources().filter { !$0.path.hasPrefix("ErrorConventions/") }
        // A code type declared by hand instead of as an ErrorCode.
        #expect(try Self.matches(#"struct Code: Hashable, Sendable, CustomStringConvertible"#, in: files) == [])
        // Equality on the code alone, written again (BackupIntegrityError's also compares its subject).
        #expect(try Self.matches(#"static func == \(lhs: \w+Error, rhs: \w+Error\) -> Bool \{ lhs\.code == rhs\.code \}"#, in: files) == [])
        #expect(try Self.matches(#"var description: String \{ rawValue \}"#, in: files) == [])
    }

    @Test("No raw pointer or OpaquePointer in a public or package declaration")
    func noPointersInInterfaces() throws {
        let pattern = #"^\s*(public|package|open)\b[^/]*\b(OpaquePointer|Unsafe(Mutable)?(Raw)?(Buffer)?Pointer)"#
        #expect(try Self.matches(pattern, in: try Self.sources()) == [])
    }

    static func isComment(_ line: String) -> Bool { line.trimmingCharacters(in: .whitespaces).hasPrefix("//") }

    @Test("Every @unchecked Sendable says why it is safe, in a comment above it or at the top of its body")
    func uncheckedSendableExplained() throws {
        var unexplained: [String] = []
        for file in try Self.sources() {
            let lines = file.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            for (index, line) in lines.enumerated() where line.contains("@unchecked Sendable") && !Self.isComment(line) {
                // The reason sits in the comment just above the declaration, or on the first lines of its body.
                let above = lines[..<index].reversed().prefix(while: Self.isComment)
                let below = lines[(index + 1)...].prefix(2).filter(Self.isComment)
                if !(above + below).contains(where: { $0.contains("@unchecked") }) {
                    unexplained.append("\(file.path):\(index + 1)")
                }
            }
        }
        #expect(unexplained == [], "say why each is safe in a comment above it")
    }
}
