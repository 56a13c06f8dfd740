import Foundation
import Glibc
import Testing
import TestSupport

@Suite("systemd integration with the real systemd tools")
struct SystemdIntegrationTests {
    @Test("Socket activation and sd_notify under systemd-socket-activate")
    func socketActivation() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-sa-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let listenPath = directory.appendingPathComponent("intake.sock").path
        let notify = try DatagramSocket()
        let notifyPath = notify.address
        let osmosectl = builtExecutablesDirectory().appendingPathComponent("osmosectl").path

        // systemd-socket-activate listens, and starts the program on the first connection.
        let activator = try BackgroundProcess("/usr/bin/systemd-socket-activate", [
            "-l", listenPath, "--fdname=intake", "-E", "NOTIFY_SOCKET=\(notifyPath)",
            osmosectl, "diagnose", "systemd", "--notify-ready", "--accept-one",
        ])
        let reply: String
        do {
            reply = try await offThePool { try connectAndRead(listenPath) }
        } catch {
            // Never left waiting for an activator nobody connected to.
            activator.signal(SIGKILL)
            _ = try await activator.wait()
            throw error
        }
        let result = try await activator.wait()
        #expect(reply == "osmose ok\n")
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardOutput.contains("fd 3 intake (unix stream, listening)"), "\(result.standardOutput)")
        let received = try await offThePool { [notify] in notify.receive() }
        let message = try #require(received)
        #expect(message.contains("READY=1"))
        #expect(message.contains("STATUS=osmosectl diagnose: 1 socket(s)"))
    }

    @Test("Every unit in systemd/ passes systemd-analyze verify and rates at most 1.5 exposed")
    func unitsVerify() async throws {
        let units = try FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("systemd").path)
            .filter { name in [".service", ".socket", ".timer"].contains { name.hasSuffix($0) } }.sorted()
        #expect(!units.isEmpty)
        let result = try await runProgram(
            repositoryRoot.appendingPathComponent("scripts/verify-units").path, [], environment: ["OSMOSE_BIN_DIR": builtExecutablesDirectory().path])
        #expect(result.status == 0, "\(result.standardOutput)\(result.standardError)")
        for unit in units { #expect(result.standardOutput.contains("ok \(unit)"), "\(unit) was checked") }
    }

    @Test("The unit checker fails a broken unit (so its passes mean something)")
    func unitsVerifyCatchesErrors() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-units-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "[Service]\nType=notyfy\nExecStart=/usr/bin/osmosectl version\nProtectSytem=strict\n"
            .write(toFile: directory.appendingPathComponent("broken.service").path, atomically: true, encoding: .utf8)
        let result = try await runProgram(
            repositoryRoot.appendingPathComponent("scripts/verify-units").path, [directory.path], environment: ["OSMOSE_BIN_DIR": builtExecutablesDirectory().path])
        #expect(result.status != 0)
        #expect(result.standardOutput.contains("FAIL broken.service"))
    }
}
