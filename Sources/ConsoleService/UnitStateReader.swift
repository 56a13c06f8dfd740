import Foundation

/// A systemd unit's state as `systemctl show` gives it.
struct UnitState: Sendable, Hashable {
    let unit: String
    /// active, inactive, failed…; nil when systemd could not be asked.
    let activeState: String?
    let subState: String?
    /// When it last entered its active state, as systemd prints it.
    let since: String?
    /// The result of its last run (`success`, `exit-code`…).
    let result: String?
    /// How many times systemd restarted it.
    let restarts: String?
}

/// Reads units' states with `systemctl show` (no D-Bus client of our own): where no
/// systemd runs, or the unit's sandbox hides it, each state reads as unknown.
struct UnitStateReader: Sendable {
    let systemctl = "/usr/bin/systemctl"

    func states(of units: [String]) async -> [UnitState] {
        await withTaskGroup(of: UnitState.self) { group in
            for unit in units { group.addTask { await self.state(of: unit) } }
            var states: [UnitState] = []
            for await state in group { states.append(state) }
            return states.sorted { $0.unit < $1.unit }
        }
    }

    func state(of unit: String) async -> UnitState {
        let unknown = UnitState(unit: unit, activeState: nil, subState: nil, since: nil, result: nil, restarts: nil)
        guard FileManager.default.isExecutableFile(atPath: systemctl) else { return unknown }
        let output: String? = await withCheckedContinuation { continuation in
            // Waiting for the child happens on a thread of its own, never on the cooperative pool.
            Thread.detachNewThread {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: systemctl)
                process.arguments = ["show", "--no-pager", "--property=ActiveState,SubState,ActiveEnterTimestamp,Result,NRestarts", "--", unit]
                let pipe = Pipe()
                process.standardOutput = pipe
                process.standardError = FileHandle.nullDevice
                do {
                    try process.run()
                    let data = pipe.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    continuation.resume(returning: process.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil)
                } catch {
                    continuation.resume(returning: nil)
                }
            }
        }
        guard let output else { return unknown }
        var values: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        guard let active = values["ActiveState"], !active.isEmpty else { return unknown }
        return UnitState(
            unit: unit, activeState: active, subState: values["SubState"], since: values["ActiveEnterTimestamp"].flatMap { $0.isEmpty ? nil : $0 },
            result: values["Result"], restarts: values["NRestarts"])
    }
}
