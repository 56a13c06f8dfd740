import Foundation
import Glibc
import Systemd
import Testing

@Suite("SocketGroup: a Unix listening socket given to the reverse proxy's group")
struct SocketGroupTests {
    @Test("An unknown group is refused by name; a socket is given to the group, 0660, its owner unchanged")
    func grant() throws {
        let unknown = #expect(throws: SystemdError.self) { try SocketGroup(named: "osmose-no-such-group") }
        #expect(unknown?.code == .socketGroup && "\(unknown!)".contains("osmose-no-such-group does not exist"))

        // A real listening socket (bound: the file exists), in a private directory.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-socket-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/s.sock"
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let old = umask(0o077)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        umask(old)
        try #require(bound == 0, "bind: \(String(cString: strerror(errno)))")
        var before = stat()
        try #require(stat(path, &before) == 0)
        #expect(before.st_mode & 0o777 == 0o700)

        // A group this process may give files to: as root, nogroup (not its own, so the
        // group visibly changes); otherwise its own.
        let group = try #require(geteuid() == 0 ? (getgrnam("nogroup") ?? getgrgid(getegid())) : getgrgid(getegid()))
        let name = String(cString: group.pointee.gr_name), id = group.pointee.gr_gid
        let socketGroup = try SocketGroup(named: name)
        try socketGroup.grant(socketAt: path)
        var after = stat()
        try #require(stat(path, &after) == 0)
        #expect(after.st_mode & 0o777 == 0o660)
        #expect(after.st_gid == id && after.st_uid == before.st_uid)

        let missing = #expect(throws: SystemdError.self) { try socketGroup.grant(socketAt: "\(directory)/absent.sock") }
        #expect(missing.map { "\($0)" }?.contains("absent.sock") == true)
    }
}
