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

    @Test("The head directories default to the journal's witness directories, and an empty list means none")
    func headDirectories() throws {
        let witnesses = "journal:\n  witness_directories: [/var/lib/osmose-journald/witness]\n"
        #expect(try parse(witnesses).backupHeadDirectories == ["/var/lib/osmose-journald/witness"])
        let own = try parse(witnesses + "backup:\n  head_directories: [/var/lib/osmose-backupd/head, /mnt/witness-nas/backup]\n")
        #expect(own.backupHeadDirectories == ["/var/lib/osmose-backupd/head", "/mnt/witness-nas/backup"])
        #expect(try parse(witnesses + "backup:\n  head_directories: []\n").backupHeadDirectories == [])
    }

    static let verifier = "journal.chu.example/backup+1a2b3c4d+AQ" + String(repeating: "A", count: 42)
    static let retired = "journal.chu.example/backup+9f8e7d6c+AQ" + String(repeating: "B", count: 42)

    @Test("Backup-signing key files, verifier keys and retired verifier keys with their retirement time are read")
    func signing() throws {
        let parsed = try parse(
            """
            backup:
              signing_key_files: [/var/lib/postgresql/backup-signing.key]
              verifier_keys: ["\(Self.verifier)", "\(Self.verifier)"]
              retired_verifier_keys:
                - {key: "\(Self.retired)", retired: 2026-12-01T02:00:00.123Z}

            """)
        #expect(parsed.backup.signingKeyFiles == ["/var/lib/postgresql/backup-signing.key"])
        #expect(parsed.backup.verifierKeys == [Self.verifier], "listed once")
        #expect(parsed.backup.retiredVerifierKeys == [.init(key: Self.retired, retired: "2026-12-01T02:00:00.123Z")])
    }

    @Test("Bad backup settings are refused with their line", arguments: [
        ("backup:\n  signing_key_files: [relative.key]\n", 2, "absolute"),
        ("backup:\n  verifier_keys: [\"age1qqqq\"]\n", 2, "not a verifier key"),
        ("backup:\n  retired_verifier_keys:\n    - {key: \"\(retired)\", retired: yesterday}\n", 3, "RFC 3339"),
        ("backup:\n  retired_verifier_keys:\n    - {key: \"\(retired)\"}\n", 3, "retired"),
        ("backup:\n  verifier_keys: [\"\(retired)\"]\n  retired_verifier_keys:\n    - {key: \"\(retired)\", retired: 2026-12-01T02:00:00Z}\n", 4, "live or retired"),
        ("backup:\n  recipients: [\"\(classic)\", \"\(hybrid)\"]\n", 2, "mixes hybrid post-quantum"),
        ("backup:\n  recipients: [\"age1pq1tooshort\"]\n", 2, "not an age recipient"),
        ("backup:\n  file_trees: [relative/cold]\n", 2, "absolute"),
        ("backup:\n  head_directories: [relative/head]\n", 2, "absolute"),
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
