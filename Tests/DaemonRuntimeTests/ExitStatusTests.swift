import DaemonRuntime
import Journal
import Keyring
import Logging
import Settings
import Store
import Testing

@Suite("Exit statuses: one table, one mapping from errors")
struct ExitStatusTests {
    struct Unforeseen: Error {}

    @Test("The table holds the documented statuses, each once")
    func table() {
        #expect(ExitStatus.all.map(\.code) == [0, 1, 3, 4, 5, 6, 64])
        #expect(Set(ExitStatus.all.map(\.meaning)).count == ExitStatus.all.count)
    }

    @Test("A configuration or policy error is 3")
    func configuration() {
        let error = ConfigurationError(.unknownSetting, file: "/etc/osmose/osmose.yaml", line: 4, column: 3, reason: "unknown setting")
        #expect(ExitStatus(for: error) == .invalidConfiguration)
        #expect(ExitStatus(for: error).code == 3)
    }

    @Test("A database that cannot be reached is 4")
    func database() async {
        let error = await #expect(throws: StoreError.self) {
            _ = try await Connection.connect("host=/nonexistent/osmose port=1 dbname=none connect_timeout=1", logger: Logger(label: "test"))
        }
        #expect(error.map { ExitStatus(for: $0).code } == 4)
    }

    @Test("Every keyring error is 6: a missing or wrong master key, or a keyring the daemon cannot use")
    func keyring() {
        for code in [KeyringError.Code.masterKeyUnavailable, .wrongMasterKey, .noPrimaryKey] {
            #expect(ExitStatus(for: KeyringError(code, "test")).code == 6, "\(code)")
        }
    }

    @Test("Journal errors: a signing key is 6, integrity is 5, the rest 1")
    func journal() {
        #expect(ExitStatus(for: JournalError(.signingKey, "no key")).code == 6)
        for code in [JournalError.Code.inconsistentState, .witness, .concurrentWriter] {
            #expect(ExitStatus(for: JournalError(code, "test")).code == 5, "\(code)")
        }
        #expect(ExitStatus(for: JournalError(.notFound, "test")).code == 1)
        #expect(ExitStatus(for: JournalError(.invalidArgument, "test")).code == 1)
    }

    @Test("Any other error is 1")
    func unforeseen() {
        #expect(ExitStatus(for: Unforeseen()) == .failure)
        #expect(ExitStatus(for: CancellationError()).code == 1)
    }

    @Test("--help lists the statuses a daemon names, in order, in its own words where it gives them, and 64")
    func helpSection() {
        let text = ExitStatus.helpSection([.keyUnavailable, .success, .invalidConfiguration], details: [.keyUnavailable: "the master key is wrong"])
        #expect(
            text == """
                EXIT STATUS
                  0   stopped cleanly (SIGTERM), or the work is done
                  3   a configuration or policy file is invalid (file and line named)
                  6   the master key is wrong
                  64  the command line is wrong (unknown option, missing argument)
                """)
    }
}
