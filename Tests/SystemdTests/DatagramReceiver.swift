import Foundation
import Glibc

/// A real AF_UNIX datagram socket standing in for systemd's notification socket.
/// Safe to share: its descriptor is fixed at creation, and tests receive from one
/// thread at a time (off the cooperative pool, since receiving blocks).
final class DatagramReceiver: @unchecked Sendable {
    let address: String
    private let descriptor: Int32
    private let path: String?

    /// Binds a filesystem socket in a fresh temporary directory, or an abstract one.
    init(abstract: Bool) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        let unique = UUID().uuidString.prefix(8)
        var bytes: [UInt8]
        if abstract {
            address = "@osmose-test-\(unique)"
            path = nil
            bytes = [0] + Array("osmose-test-\(unique)".utf8)
        } else {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-notify-\(unique)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            address = directory.appendingPathComponent("notify").path
            path = address
            bytes = Array(address.utf8) + [0]
        }
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The next datagram as text, or nil after 5 s.
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        return String(decoding: buffer.prefix(count), as: UTF8.self)
    }

    deinit {
        close(descriptor)
        if let path { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
    }
}
