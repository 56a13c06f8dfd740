import Settings
import Testing

@Suite("The backup section of the configuration")
struct BackupSettingsTests {
    func parse(_ text: String) throws -> SuiteConfiguration {
        try SuiteConfiguration.parse(SettingsDocument(file: "osmose.yaml", text: text))
    }

    static let classic = "age1" + String(repeating: "q", count: 58)
    static let hybrid = "age1pq1" + String(repeating: "p", count: 1952)

    @Test("Classic or hybrid post-quantum recipients, copies and file trees are read")
    func valid() throws {
        let classic = try parse("backup:\n  store: /srv/backups\n  recipients: [\"\(Self.classic)\"]\n  copies: [/mnt/offsite]\n  file_trees: [/var/lib/osmose/cold]\n")
        #expect(classic.backup.recipients == [Self.classic] && classic.backup.copies == ["/mnt/offsite"] && classic.backup.fileTrees == ["/var/lib/osmose/cold"])
        let hybrid = try parse("backup:\n  recipients: [\"\(Self.hybrid)\", \"\(Self.hybrid.dropLast())q\"]\n")
        #expect(hybrid.backup.recipients.count == 2)
    }

    @Test("Bad backup settings are refused with their line", arguments: [
        ("backup:\n  recipients: [\"\(classic)\", \"\(hybrid)\"]\n", 2, "mixes hybrid post-quantum"),
        ("backup:\n  recipients: [\"age1pq1tooshort\"]\n", 2, "not an age recipient"),
        ("backup:\n  file_trees: [relative/cold]\n", 2, "absolute"),
        ("backup:\n  store: relative\n", 2, "absolute"),
    ])
    func refused(text: String, line: Int, mentions: String) {
        expectRefused(text, line: line, mentions: mentions)
    }
}

/// Expects `text` (an osmose.yaml) to be refused with an error at `line` that mentions `mentions`.
func expectRefused(_ text: String, line: Int, mentions: String) {
    do {
        _ = try SuiteConfiguration.parse(SettingsDocument(file: "osmose.yaml", text: text))
        Issue.record("accepted: \(text)")
    } catch let error as ConfigurationError {
        #expect(error.line == line, "\(error)")
        #expect("\(error)".contains(mentions), "\(error)")
    } catch {
        Issue.record("unexpected \(error)")
    }
}
