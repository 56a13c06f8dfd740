import Foundation
import Systemd

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

/// Reads units' states with `systemctl show`: where no systemd runs, or the unit's
/// sandbox hides it, each state reads as unknown.
struct UnitStateReader: Sendable {
    let systemctl = Systemctl()

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
        guard let values = await systemctl.show(unit, properties: ["ActiveState", "SubState", "ActiveEnterTimestamp", "Result", "NRestarts"]),
            let active = values["ActiveState"], !active.isEmpty
        else { return unknown }
        return UnitState(
            unit: unit, activeState: active, subState: values["SubState"], since: values["ActiveEnterTimestamp"].flatMap { $0.isEmpty ? nil : $0 },
            result: values["Result"], restarts: values["NRestarts"])
    }
}
