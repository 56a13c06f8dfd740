import ArgumentParser
import DaemonRuntime
import Foundation
import Journal
import Keyring
import Settings
import Systemd
import Testing
import TestSupport

/// A daemon for these tests, set up as every daemon is; the hidden `--fail` makes
/// its run throw the named error after the start-up.
struct ProbeDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration.daemon(
        .retentiond, abstract: "Probes the shared start-up.",
        exitStatuses: [.success, .failure, .invalidConfiguration, .databaseUnavailable])

    @OptionGroup var options: DaemonOptions
    @Option(help: .hidden) var fail: String?

    struct Unforeseen: Error, CustomStringConvertible {
        var description: String { "something unforeseen" }
    }

    func run() async throws {
        _ = try DaemonContext(.retentiond, logLabel: "osmose.test", options: options)
        switch fail {
        case "witness": throw JournalError(.witness, "a witness holds a checkpoint the database lacks")
        case "signing-key": throw JournalError(.signingKey, "no signing key")
        case "master-key": throw KeyringError(.wrongMasterKey, "not the keyring's master key")
        case "unforeseen": throw Unforeseen()
        case "exit-code": throw ExitCode(2)
        default: return
        }
    }
}

@Suite("Starting a daemon: parse, run, and the status from the one table")
struct DaemonLauncherTests {
    /// A configuration file with nothing in it (every setting at its default).
    func emptyConfiguration() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-launcher-\(UUID().uuidString.prefix(8)).yaml").path
        try "".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("--help and --version end with 0, a wrong command line with 64, a clean run with 0")
    func commandLine() async throws {
        let silent = SystemdNotifier(environment: [:])
        #expect(await DaemonLauncher.run(ProbeDaemon.self, arguments: ["--help"], notifier: silent) == 0)
        #expect(await DaemonLauncher.run(ProbeDaemon.self, arguments: ["--version"], notifier: silent) == 0)
        #expect(await DaemonLauncher.run(ProbeDaemon.self, arguments: ["--no-such-option"], notifier: silent) == 64)
        #expect(await DaemonLauncher.run(ProbeDaemon.self, arguments: ["--config"], notifier: silent) == 64)
        let config = try emptyConfiguration()
        #expect(await DaemonLauncher.run(ProbeDaemon.self, arguments: ["--config", config], notifier: silent) == 0)
    }

    @Test(
        "An error thrown by the run ends it with its documented status, told to systemd",
        arguments: [("witness", Int32(5)), ("signing-key", 6), ("master-key", 6), ("unforeseen", 1)])
    func failures(_ failure: String, _ status: Int32) async throws {
        let receiver = try DatagramSocket()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.address])
        let config = try emptyConfiguration()
        #expect(await DaemonLauncher.run(ProbeDaemon.self, arguments: ["--config", config, "--fail", failure], notifier: notifier) == status)
        let message = try #require(try await offThePool { receiver.receive() }).split(separator: "\n").map(String.init)
        #expect(message.contains("ERRNO=\(status)"), "\(message)")
        #expect(message.contains { $0.hasPrefix("STATUS=failed: ") }, "\(message)")
    }

    @Test("A configuration that cannot be read is 3, and systemd is told why")
    func unreadableConfiguration() async throws {
        let receiver = try DatagramSocket()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.address])
        let missing = "/nonexistent/osmose-\(UUID().uuidString.prefix(8)).yaml"
        #expect(await DaemonLauncher.run(ProbeDaemon.self, arguments: ["--config", missing], notifier: notifier) == 3)
        let message = try #require(try await offThePool { receiver.receive() })
        #expect(message.contains("ERRNO=3"))
        #expect(message.contains("STATUS=failed: \(missing): cannot read the file"), "\(message)")
        #expect(message.contains("[config.unreadable]"))
    }

    @Test("An ExitCode thrown on purpose is the status as it is")
    func exitCode() async throws {
        let config = try emptyConfiguration()
        let status = await DaemonLauncher.run(ProbeDaemon.self, arguments: ["--config", config, "--fail", "exit-code"], notifier: SystemdNotifier(environment: [:]))
        #expect(status == 2)
    }
}
