import Foundation
import Glibc

/// A daemon started as systemd starts a `Type=notify` service: in the background,
/// with a notification socket of its own in `$NOTIFY_SOCKET`.
public struct NotifiedDaemon: Sendable {
    /// The running program.
    public let process: BackgroundProcess
    /// Where it sends READY, STATUS and STOPPING.
    public let notifications: DatagramSocket

    /// Starts `executable` with `arguments`; it inherits this process's environment plus `environment`.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        notifications = try DatagramSocket()
        process = try BackgroundProcess(executable, arguments, environment: environment.merging(["NOTIFY_SOCKET": notifications.address]) { $1 })
    }

    /// The first notification that contains `assignment` (e.g. `READY=1`), skipping
    /// the others (progress in `STATUS=`).
    /// - Throws: ``TestEnvironmentError`` when none comes within 60 s of the previous one.
    public func notification(containing assignment: String) async throws -> String {
        let socket = notifications
        return try await offThePool {
            while let message = socket.receive() {
                if message.split(separator: "\n").contains(where: { $0 == assignment }) { return message }
            }
            throw TestEnvironmentError("no notification with \(assignment) came")
        }
    }

    /// Sends SIGTERM and waits for the exit.
    /// - Returns: the outcome, and how long the daemon took to exit after the signal.
    public func terminate() async throws -> (outcome: ProcessOutcome, took: Duration) {
        let start = ContinuousClock.now
        process.signal(SIGTERM)
        let outcome = try await process.wait()
        return (outcome, ContinuousClock.now - start)
    }
}
