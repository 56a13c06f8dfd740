public import Foundation
import Glibc

/// A listening socket handed over by systemd (`.socket` unit).
public struct ListenedSocket: Hashable, Sendable {
    /// The file descriptor, from 3 upwards.
    public let fileDescriptor: Int32
    /// The name from `FileDescriptorName=` (`LISTEN_FDNAMES`), or `unknown`.
    public let name: String
}

/// Reads the sockets systemd passed at start (`sd_listen_fds(3)` without libsystemd).
public enum SocketActivation {
    /// The first passed descriptor (`SD_LISTEN_FDS_START`).
    public static let firstDescriptor: Int32 = 3

    /// The sockets passed to this process, or none when it was not socket-activated
    /// (no `LISTEN_FDS`, or `LISTEN_PID` names another process).
    ///
    /// Marks each descriptor close-on-exec. With `unsetEnvironment`, removes the
    /// variables so that child processes do not think the sockets are theirs.
    /// - Throws: ``SystemdError/Code/invalidSocketActivation`` when the variables are malformed.
    public static func sockets(
        environment: [String: String] = ProcessInfo.processInfo.environment, unsetEnvironment: Bool = true
    ) throws -> [ListenedSocket] {
        defer {
            if unsetEnvironment {
                unsetenv("LISTEN_PID")
                unsetenv("LISTEN_FDS")
                unsetenv("LISTEN_FDNAMES")
            }
        }
        guard let countText = environment["LISTEN_FDS"] else { return [] }
        if let pidText = environment["LISTEN_PID"] {
            guard let pid = Int32(pidText) else { throw SystemdError(.invalidSocketActivation, "LISTEN_PID is not a number") }
            guard pid == getpid() else { return [] }
        }
        guard let count = Int32(countText), count >= 0, count < 4096 else {
            throw SystemdError(.invalidSocketActivation, "LISTEN_FDS is not a count of descriptors")
        }
        let names = environment["LISTEN_FDNAMES"].map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        if let names, names.count != Int(count) {
            throw SystemdError(.invalidSocketActivation, "LISTEN_FDNAMES has \(names.count) names for \(count) descriptors")
        }
        return try (0..<count).map { offset in
            let descriptor = firstDescriptor + offset
            let flags = fcntl(descriptor, F_GETFD)
            guard flags >= 0, fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) == 0 else {
                throw SystemdError(.invalidSocketActivation, "descriptor \(descriptor) from LISTEN_FDS is not open: \(errnoText())")
            }
            return ListenedSocket(fileDescriptor: descriptor, name: names?[Int(offset)] ?? "unknown")
        }
    }

    /// True when `socket` is a listening Unix stream socket (as a `.socket` unit's `ListenStream=/path` gives).
    public static func isUnixStreamListener(_ socket: ListenedSocket) -> Bool {
        var type: Int32 = 0, listening: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(socket.fileDescriptor, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type == Int32(SOCK_STREAM.rawValue) else { return false }
        length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(socket.fileDescriptor, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening == 1 else { return false }
        var address = sockaddr_storage()
        length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        // Memory: sockaddr_storage is large enough for any address family, and `length`
        // tells getsockname its size; the rebound pointer lives only for the call.
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket.fileDescriptor, $0, &length) }
        }
        return named == 0 && Int32(address.ss_family) == AF_UNIX
    }
}
