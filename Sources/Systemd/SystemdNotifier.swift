public import Foundation
import Glibc

/// Sends state changes to the service manager over `$NOTIFY_SOCKET`, as
/// `sd_notify(3)` does, without libsystemd.
///
/// Does nothing when the process was not started by systemd with `Type=notify`
/// (no `$NOTIFY_SOCKET`). Both filesystem sockets and abstract ones (`@name`) work.
public struct SystemdNotifier: Sendable {
    /// The socket address from `$NOTIFY_SOCKET`, or nil when not under systemd.
    public let socketAddress: String?
    private let watchdogMicroseconds: UInt64?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let address = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        socketAddress = address
        if let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0,
            environment["WATCHDOG_PID"].flatMap(Int32.init).map({ $0 == getpid() }) ?? true
        {
            watchdogMicroseconds = usec
        } else {
            watchdogMicroseconds = nil
        }
    }

    /// True when there is a service manager to notify.
    public var isEnabled: Bool { socketAddress != nil }

    /// The watchdog timeout systemd expects pings within, when `WatchdogSec=` is set
    /// for this process.
    public var watchdogTimeout: Duration? { watchdogMicroseconds.map { .microseconds(Int64(clamping: $0)) } }

    /// Tells systemd start-up is complete (`READY=1`), with a status line.
    public func ready(status: String? = nil) throws {
        try send(["READY": "1", "STATUS": status, "MAINPID": String(getpid())])
    }

    /// Updates the one-line status shown by `systemctl status`.
    public func status(_ text: String) throws { try send(["STATUS": text]) }

    /// Pings the watchdog (`WATCHDOG=1`).
    public func watchdog() throws { try send(["WATCHDOG": "1"]) }

    /// Tells systemd the service is shutting down (`STOPPING=1`).
    public func stopping(status: String? = nil) throws { try send(["STOPPING": "1", "STATUS": status]) }

    /// Tells systemd why the service is about to exit with `status`
    /// (`STATUS=failed: error`, and `ERRNO=status`, which `systemctl status` shows).
    public func failing(_ error: any Error, status: Int32) throws {
        try send(["STATUS": "failed: \(error)", "ERRNO": "\(status)"])
    }

    /// Sends the given assignments, in a stable order, as one datagram. Newlines in
    /// values become spaces: the protocol is one assignment per line.
    public func send(_ assignments: [String: String?]) throws {
        guard let socketAddress else { return }
        let message = assignments.compactMapValues { $0 }.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value.replacingOccurrences(of: "\n", with: " "))" }
            .joined(separator: "\n")
        try Self.sendDatagram(Array(message.utf8), to: socketAddress)
    }

    static func sendDatagram(_ bytes: [UInt8], to address: String) throws {
        guard address.hasPrefix("/") || address.hasPrefix("@") else {
            throw SystemdError(.notifyFailed, "NOTIFY_SOCKET must be an absolute path or an abstract name starting with @")
        }
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        var path = Array(address.utf8)
        let abstract = path.first == UInt8(ascii: "@")
        if abstract { path[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: socketAddress.sun_path)
        guard path.count < capacity else { throw SystemdError(.notifyFailed, "NOTIFY_SOCKET is longer than a socket path may be") }
        // Memory: `path.count < capacity` was checked above, so the path (and, for a
        // filesystem socket, the NUL of the zeroed structure after it) fits in `sun_path`.
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { buffer in
            buffer.copyBytes(from: path)
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + path.count + (abstract ? 0 : 1))
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SystemdError(.notifyFailed, "cannot create a datagram socket: \(errnoText())") }
        defer { close(descriptor) }
        // Memory: both pointers live only for the sendto() call; `length` never exceeds
        // sizeof(sockaddr_un) (offset of sun_path + a path shorter than sun_path).
        let sent = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &socketAddress) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
        guard sent == bytes.count else { throw SystemdError(.notifyFailed, "cannot send to NOTIFY_SOCKET \(address): \(errnoText())") }
    }
}
