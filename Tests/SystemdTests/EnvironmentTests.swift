import Cryptography
import Foundation
import Logging
import Systemd
import Testing

@Suite("Socket activation variables, credentials and journald log lines")
struct EnvironmentTests {
    @Test("Socket activation: absent, meant for another process, or malformed")
    func socketActivationParsing() throws {
        #expect(try SocketActivation.sockets(environment: [:], unsetEnvironment: false).isEmpty)
        #expect(try SocketActivation.sockets(environment: ["LISTEN_FDS": "1", "LISTEN_PID": "1"], unsetEnvironment: false).isEmpty)
        let pid = "\(getpid())"
        for environment in [
            ["LISTEN_FDS": "many", "LISTEN_PID": pid],
            ["LISTEN_FDS": "1", "LISTEN_PID": "me"],
            ["LISTEN_FDS": "2", "LISTEN_PID": pid, "LISTEN_FDNAMES": "only-one"],
        ] {
            let error = #expect(throws: SystemdError.self) { try SocketActivation.sockets(environment: environment, unsetEnvironment: false) }
            #expect(error?.code == .invalidSocketActivation)
        }
    }

    @Test("Credentials load from CREDENTIALS_DIRECTORY; missing ones say which unit line to add")
    func credentials() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-creds-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data([1, 2, 3, 4]).write(to: directory.appendingPathComponent("master-key"))
        try FileManager.default.createSymbolicLink(
            at: directory.appendingPathComponent("linked"), withDestinationURL: directory.appendingPathComponent("master-key"))
        let credentials = Credentials(environment: ["CREDENTIALS_DIRECTORY": directory.path])
        #expect(try credentials.load("master-key").exposedCopy() == [1, 2, 3, 4])
        #expect(credentials.names() == ["linked", "master-key"])
        for name in ["absent", "../master-key", "", "linked"] {
            let error = #expect(throws: SystemdError.self, "\(name)") { try credentials.load(name) }
            #expect(error?.code == .credentialUnavailable)
        }
        let unset = #expect(throws: SystemdError.self) { try Credentials(environment: [:]).load("master-key") }
        #expect(unset?.description.contains("LoadCredential=master-key") == true)
    }

    @Test("Journal lines carry the syslog priority and stay on one line")
    func journalLines() {
        let date = Date(timeIntervalSince1970: 1_795_000_000.5)
        let expectations: [(Logger.Level, Int)] = [(.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2)]
        for (level, priority) in expectations {
            let line = JournaldLogHandler.render(level: level, label: "osmose.test", message: "m", metadata: [:], format: .journal, date: date)
            #expect(line == "<\(priority)>osmose.test: m\n")
        }
        let line = JournaldLogHandler.render(
            level: .error, label: "osmose.journal", message: "first\nsecond",
            metadata: ["osmose.journal.seq": "42", "osmose.reason": "bad tag"], format: .journal, date: date)
        #expect(line == "<3>osmose.journal: first\\nsecond osmose.journal.seq=42 osmose.reason=\"bad tag\"\n")
        let console = JournaldLogHandler.render(level: .info, label: "osmose", message: "ready", metadata: [:], format: .console, date: date)
        #expect(console.hasPrefix("2026-11-18T") && console.hasSuffix(" info osmose: ready\n"))
        #expect(JournaldLogHandler.Format.detect(environment: ["JOURNAL_STREAM": "0:0"]) == .console)
        #expect(JournaldLogHandler.Format.detect(environment: [:]) == .console)
    }
}
