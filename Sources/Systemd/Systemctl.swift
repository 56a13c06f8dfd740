import Foundation
import Glibc

/// Asks the host's systemd about units through `systemctl` (no D-Bus client of our
/// own). Each call runs the child and waits for it on a thread of its own, never on
/// the cooperative pool. Where no systemd runs, or a unit's sandbox hides it, the
/// answers are nil.
public struct Systemctl: Sendable {
    /// The systemctl executable: Debian 12 has it in /usr/bin (merged /usr), older
    /// layouts in /bin.
    public let path: String?

    /// How long one systemctl may run before it is killed and its answer taken as nil.
    public let timeout: Double

    public init(candidates: [String] = ["/usr/bin/systemctl", "/bin/systemctl"], timeout: Double = 10) {
        path = candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
        self.timeout = timeout
    }

    /// Whether systemd manages this host (sd_booted(3)'s test).
    public static var isBooted: Bool { FileManager.default.fileExists(atPath: "/run/systemd/system") }

    /// `systemctl show --property=…` of `unit`: each property's value, or nil when
    /// systemctl could not be run or failed.
    public func show(_ unit: String, properties: [String]) async -> [String: String]? {
        guard let output = await run(["show", "--no-pager", "--property=" + properties.joined(separator: ","), "--", unit], acceptedStatuses: [0]) else {
            return nil
        }
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        return values
    }

    /// `systemctl is-enabled UNIT`'s answer (enabled, disabled, static, masked…),
    /// "not found" for a unit systemd does not know, nil when systemctl could not be run.
    public func enablement(of unit: String) async -> String? {
        // is-enabled exits 1 for anything but enabled; its answer is on standard output.
        guard let output = await run(["is-enabled", "--", unit], acceptedStatuses: [0, 1, 4]) else { return nil }
        let state = output.trimmingCharacters(in: .whitespacesAndNewlines)
        return state.isEmpty ? "not found" : state
    }

    /// Runs systemctl with `arguments`: its standard output when it exits with one of
    /// `acceptedStatuses` within `timeout`, else nil (a hung systemctl is killed: it
    /// would hold a thread and the page or check waiting for it).
    func run(_ arguments: [String], acceptedStatuses: Set<Int32>) async -> String? {
        guard let path else { return nil }
        let timeout = timeout
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: path)
                process.arguments = arguments
                let pipe = Pipe()
                process.standardOutput = pipe
                process.standardError = FileHandle.nullDevice
                do {
                    try process.run()
                    // Killed past the deadline; a killed systemctl ends by a signal, whose
                    // answer is nil below.
                    let pid = process.processIdentifier
                    let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
                    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    watchdog.cancel()
                    let exited = process.terminationReason == .exit && acceptedStatuses.contains(process.terminationStatus)
                    continuation.resume(returning: exited ? String(decoding: data, as: UTF8.self) : nil)
                } catch {
                    continuation.resume(returning: nil)
                }
            }
        }
    }
}
