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
        let notify = try NotifySocket(path: directory.appendingPathComponent("notify").path)
        let notifyPath = notify.path
        let osmosectl = builtExecutablesDirectory().appendingPathComponent("osmosectl").path

        // systemd-socket-activate listens, and starts the program on the first connection.
        async let outcome = runProgram("/usr/bin/systemd-socket-activate", [
            "-l", listenPath, "--fdname=intake", "-E", "NOTIFY_SOCKET=\(notifyPath)",
            osmosectl, "diagnose", "systemd", "--notify-ready", "--accept-one",
        ])
        let reply = try await offThePool { try connectAndRead(listenPath) }
        let result = try await outcome
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
        let result = try await runProgram(repositoryRoot.appendingPathComponent("scripts/verify-units").path, [])
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
        let result = try await runProgram(repositoryRoot.appendingPathComponent("scripts/verify-units").path, [directory.path])
        #expect(result.status != 0)
        #expect(result.standardOutput.contains("FAIL broken.service"))
    }
}

/// A datagram socket standing in for systemd's notification socket.
/// Receiving blocks, so callers use ``offThePool(_:)``. Safe to share: the descriptor is
/// fixed at creation and only read from one thread at a time by the tests.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let descriptor: Int32

    init(path: String) throws {
        self.path = path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8) + [0]
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard descriptor >= 0, bound == 0 else { throw POSIXError(.EADDRINUSE) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        return count >= 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : nil
    }

    deinit { close(descriptor) }
}

/// Connects to a Unix stream socket, retrying while it is being created, and reads until end of stream.
func connectAndRead(_ path: String) throws -> String {
    for _ in 0..<200 {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8) + [0]
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if connected == 0 {
            var result = [UInt8]()
            var buffer = [UInt8](repeating: 0, count: 256)
            while true {
                let count = read(descriptor, &buffer, buffer.count)
                if count <= 0 { break }
                result += buffer.prefix(count)
            }
            close(descriptor)
            return String(decoding: result, as: UTF8.self)
        }
        close(descriptor)
        usleep(25_000)
    }
    throw POSIXError(.ECONNREFUSED)
}
