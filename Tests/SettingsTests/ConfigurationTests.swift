import Settings
import Foundation
import Testing

@Suite("Configuration and policy files are read strictly, with positions")
struct ConfigurationTests {
    func parse(_ text: String) throws -> SuiteConfiguration {
        try SuiteConfiguration.parse(SettingsDocument(file: "osmose.yaml", text: text))
    }

    @Test("A complete file is read; an empty one gives the defaults")
    func valid() throws {
        let configuration = try parse("""
            database:
              connection: "host=/run/postgresql dbname=osmose"
              pool_size: 4
            logging:
              level: debug
            paths:
              state: /var/lib/osmose
              policies: /etc/osmose/policies
            """)
        #expect(configuration.database.connection == "host=/run/postgresql dbname=osmose")
        #expect(configuration.database.poolSize == 4)
        #expect(configuration.logging.level == "debug")
        #expect(try parse("") == SuiteConfiguration.defaults)
        #expect(try parse("# only a comment\n") == SuiteConfiguration.defaults)
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        let text: String, code: ConfigurationError.Code, line: Int, mentions: String
        var testDescription: String { mentions }
    }

    static let refusals: [Refusal] = [
        Refusal(text: "database:\n  conection: x\n", code: .unknownSetting, line: 2, mentions: "did you mean database.connection?"),
        Refusal(text: "logging:\n  level: info\nextra: 1\n", code: .unknownSetting, line: 3, mentions: "unknown setting extra"),
        Refusal(text: "database:\n  pool_size: many\n", code: .invalidValue, line: 2, mentions: "database.pool_size must be an integer"),
        Refusal(text: "database:\n  pool_size: 0\n", code: .invalidValue, line: 2, mentions: "from 1 to 200, not 0"),
        Refusal(text: "logging:\n  level: loud\n", code: .invalidValue, line: 2, mentions: "one of trace"),
        Refusal(text: "paths:\n  state: relative/dir\n", code: .invalidValue, line: 2, mentions: "absolute path"),
        Refusal(text: "database: [1, 2]\n", code: .invalidValue, line: 1, mentions: "database must be a mapping"),
        Refusal(text: "database:\n  connection: \"unterminated\n", code: .malformed, line: 3, mentions: "malformed YAML"),
        Refusal(text: "database:\n  pool_size: 2\n  pool_size: 3\n", code: .malformed, line: 2, mentions: "pool_size is set more than once"),
        Refusal(text: "database:\n\tpool_size: 2\n", code: .malformed, line: 2, mentions: "malformed YAML"),
    ]

    @Test("Malformed or unknown settings are refused with file, line and reason", arguments: refusals)
    func refused(refusal: Refusal) throws {
        do {
            _ = try parse(refusal.text)
            Issue.record("accepted: \(refusal.text)")
        } catch let error as ConfigurationError {
            #expect(error.code == refusal.code, "\(error)")
            #expect(error.line == refusal.line, "\(error)")
            #expect(error.description.hasPrefix("osmose.yaml:\(refusal.line):"), "\(error)")
            #expect(error.description.contains(refusal.mentions), "\(error)")
        }
    }

    @Test("A missing file is reported by path")
    func missingFile() {
        let error = #expect(throws: ConfigurationError.self) { try SuiteConfiguration.load(path: "/nonexistent/osmose.yaml") }
        #expect(error?.code == .unreadable)
        #expect(error?.description.hasPrefix("/nonexistent/osmose.yaml:") == true)
    }

    @Test("Durations parse with their units")
    func durations() throws {
        let document = try SettingsDocument(file: "x.yaml", text: "a: 500ms\nb: 30s\nc: 5min\nd: 2h\ne: 7d\nf: 3 weeks\n")
        let root = try document.root(allowedKeys: ["a", "b", "c", "d", "e", "f"])
        let range = Duration.zero...Duration.seconds(86400 * 30)
        #expect(try root.duration("a", in: range) == .milliseconds(500))
        #expect(try root.duration("b", in: range) == .seconds(30))
        #expect(try root.duration("c", in: range) == .seconds(300))
        #expect(try root.duration("d", in: range) == .seconds(7200))
        #expect(try root.duration("e", in: range) == .seconds(604_800))
        #expect(throws: ConfigurationError.self) { try root.duration("f", in: range) }
        #expect(try root.duration("absent", in: range, default: .seconds(1)) == .seconds(1))
    }
}
