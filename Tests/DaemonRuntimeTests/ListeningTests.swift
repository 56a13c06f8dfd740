import DaemonRuntime
import Foundation
import Glibc
import Logging
import Systemd
import Testing

@Suite("Listening: an HTTP daemon's socket given to its group before READY, or the daemon ends with status 3")
struct ListeningTests {
    @Test("A socket that cannot be given to its group makes run() throw systemd.socket_group, which exits 3; READY is never sent")
    func failure() async throws {
        let group = try #require(getgrgid(getegid()))
        let socketGroup = try SocketGroup(named: String(cString: group.pointee.gr_name))
        // No NOTIFY_SOCKET: a READY would be dropped, never an error.
        let listening = Listening(
            socketGroup: socketGroup, notifier: SystemdNotifier(environment: [:]), logger: Logger(label: "test"), metadataKey: "test.address")
        listening.announce(listen: "unix:/nonexistent/osmose-\(UUID().uuidString.prefix(8)).sock", address: nil)
        let error = await #expect(throws: SystemdError.self) { try await listening.run() }
        #expect(error?.code == .socketGroup)
        #expect(ExitStatus(for: try #require(error)) == .invalidConfiguration)
        #expect(ExitStatus(for: SystemdError(.notifyFailed, "another code: a restart may help")) == .failure)
    }
}
