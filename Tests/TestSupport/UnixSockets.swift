import Foundation
import Glibc

/// A real AF_UNIX datagram socket standing in for systemd's notification socket,
/// bound to a path in a fresh temporary directory or to an abstract name.
///
/// Receiving blocks (up to 10 s), so async tests call it through ``offThePool(_:)``.
/// Safe to share: the descriptor is fixed at creation and tests receive from one
/// thread at a time.
public final class DatagramSocket: @unchecked Sendable {
    /// The address as `NOTIFY_SOCKET` takes it: a path, or `@name` for an abstract socket.
    public let address: String
    private let descriptor: Int32
    private let directory: URL?

    public init(abstract: Bool = false) throws {
        let unique = UUID().uuidString.prefix(8)
        let bytes: [UInt8]
        if abstract {
            address = "@osmose-test-\(unique)"
            directory = nil
            bytes = [0] + Array("osmose-test-\(unique)".utf8)
        } else {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-notify-\(unique)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            address = folder.appendingPathComponent("notify").path
            directory = folder
            bytes = Array(address.utf8) + [0]
        }
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        var socketAddress = unixAddress(bytes)
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        // A notification that should come may take long on a loaded machine (a CI runner
        // building beside the tests): wait up to a minute before calling it missing.
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The next datagram as text, or nil after 60 s.
    public func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        return count >= 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : nil
    }

    deinit {
        close(descriptor)
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }
}

/// Connects to a Unix stream socket, retrying for up to 30 s while it is being
/// created (a loaded machine starts programs slowly), and reads until end of
/// stream. Blocks: call it through ``offThePool(_:)``.
public func connectAndRead(_ path: String) throws -> String {
    for _ in 0..<1200 {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = unixAddress(Array(path.utf8) + [0])
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

private func unixAddress(_ pathBytes: [UInt8]) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
    return address
}
