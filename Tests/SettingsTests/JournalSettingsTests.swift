import Settings
import Testing

@Suite("The journal section of the configuration")
struct JournalSettingsTests {
    func parse(_ text: String) throws -> SuiteConfiguration {
        try SuiteConfiguration.parse(SettingsDocument(file: "osmose.yaml", text: text))
    }

    @Test("Every journal setting is read, with the root user resolved by name")
    func valid() throws {
        let journal = try parse("""
            database:
              connection: "dbname=osmose"
            journal:
              origin: journal.chu-exemple.fr
              signing_key_file: /etc/osmose/journal.key
              signing_key_files: [/etc/osmose/journal-2.key]
              verifier_key: "journal.chu-exemple.fr+1a2b3c4d+AZ5YFtGwRb2QDBQ2YwgFcU2BtBd6hA3vKaJUFCiBoVP+"
              verifier_keys:
                - "journal.chu-exemple.fr+0badcafe+AZ5YFtGwRb2QDBQ2YwgFcU2BtBd6hA3vKaJUFCiBoVP/"
                - "journal.chu-exemple.fr+1a2b3c4d+AZ5YFtGwRb2QDBQ2YwgFcU2BtBd6hA3vKaJUFCiBoVP+"
              checkpoint_within: 500ms
              checkpoint_reissue: 2min
              batch_size: 1000
              witness_directories: [/var/lib/osmose-journald/witness, /mnt/witness]
              socket: unix:/run/osmose/journal.sock
              socket_peers:
                - uid: 996
                  source: osmose-backupd
                - user: root
                  source: osmose-keyd
            """)
        #expect(journal.journal.origin == "journal.chu-exemple.fr")
        #expect(journal.journal.signingKeyFiles == ["/etc/osmose/journal.key", "/etc/osmose/journal-2.key"])
        #expect(journal.journal.verifierKeys.count == 2, "a key listed twice counts once")
        #expect(journal.journal.checkpointWithin == .milliseconds(500) && journal.journal.checkpointReissue == .seconds(120))
        #expect(journal.journal.witnessDirectories.count == 2 && journal.journal.batchSize == 1000)
        #expect(journal.journal.socketPeers == [.init(uid: 996, source: "osmose-backupd"), .init(uid: 0, source: "osmose-keyd")])
        #expect(journal.journalConnection == "dbname=osmose", "the journal uses database.connection unless journal.database is set")
    }

    @Test("Bad journal settings are refused with their line", arguments: [
        ("journal:\n  origin: \"two words\"\n", 2, "printable ASCII"),
        ("journal:\n  checkpoint_within: 10ms\n", 2, "between"),
        ("journal:\n  witness_directories: [relative/dir]\n", 2, "absolute"),
        ("journal:\n  socket: /run/x.sock\n", 2, "unix:"),
        ("journal:\n  socket_peers:\n    - user: no-such-user-here\n      source: x\n", 3, "no such user"),
        ("journal:\n  socket_peers:\n    - uid: 5\n      source: Bad Name\n", 4, "program name"),
        ("journal:\n  witnes_directories: []\n", 2, "did you mean journal.witness_directories?"),
        ("journal:\n  signing_key_files: [key.txt]\n", 2, "absolute"),
        ("journal:\n  origin: journal.a.fr\n  verifier_keys: [\"journal.b.fr+1a2b3c4d+AZ5YFtGwRb2QDBQ2YwgFcU2BtBd6hA3vKaJUFCiBoVP+\"]\n", 3, "not a verifier key of journal.a.fr"),
        ("journal:\n  origin: journal.a.fr\n  verifier_keys: [\"journal.a.fr+1a2b3c4+AZ5Y\"]\n", 3, "name+id+key"),
    ])
    func refused(text: String, line: Int, mentions: String) {
        expectRefused(text, line: line, mentions: mentions)
    }
}
