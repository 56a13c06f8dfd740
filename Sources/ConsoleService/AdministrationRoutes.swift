import Backup
import Foundation
import Hummingbird
import Journal
import KeyManagement
import Settings
import StaffAccounts
import Store

extension Console {
    /// The sysadmin's pages: backups (the newest full and incremental, WAL
    /// archiving's lag, the last verification and drill), the keyring (every key,
    /// the planned and running rotations) and the daemons' health.
    func addAdministrationRoutes(to router: Router<ConsoleRequestContext>) {
        let console = self
        let sysadmin = Audience.roles([.sysadmin])
        router.get("/admin/sauvegardes") { request, context in
            await console.serve(request, context, .read, "console-backups", audience: sysadmin) { _ in try await console.backups() }
        }
        router.get("/admin/cles") { request, context in
            await console.serve(request, context, .read, "console-keys", audience: sysadmin) { _ in try await console.keys() }
        }
        router.get("/admin/services") { request, context in
            await console.serve(request, context, .read, "console-daemons", audience: sysadmin) { _ in await console.daemons() }
        }
    }

    struct BackupRow: Sendable {
        let label: String
        let present: Bool
        let id: String
        let finished: String
        let age: String
        let size: String
        let overdue: Bool
    }

    struct CheckRow: Sendable {
        let label: String
        let present: Bool
        let when: String
        let age: String
        let by: String
        let subject: String
        let passed: Bool
        let detail: String
        let overdue: Bool
    }

    struct BackupsModel: Sendable {
        let backups: [BackupRow]
        let retained: String
        let lastArchived: String
        let lastArchivedAt: String
        let currentWAL: String
        let segmentsBehind: String
        let archivingLate: Bool
        let failedCount: String
        let lastFailed: String
        let checks: [CheckRow]
    }

    /// How old each kind of backup or check may be before the page (and the alerts) say it is overdue.
    enum Overdue {
        static let full: TimeInterval = 8 * 86_400
        static let incremental: TimeInterval = 2 * 86_400
        static let verification: TimeInterval = 2 * 86_400
        static let drill: TimeInterval = 35 * 86_400
        static let walSegments: Int64 = 16
    }

    func backupStatus() async throws -> BackupStatus {
        try await pool.withConnection { connection in try await connection.perform { try BackupStatus.read(on: $0) } }
    }

    func backups() async throws -> ConsoleView {
        let status = try await backupStatus()
        let now = Date()
        func row(_ label: String, _ backup: CataloguedBackup?, _ limit: TimeInterval) -> BackupRow {
            guard let backup else { return BackupRow(label: renderer.text(label), present: false, id: "", finished: "", age: "", size: "", overdue: true) }
            return BackupRow(
                label: renderer.text(label), present: true, id: backup.id, finished: ParisTime.format(backup.finishedAt),
                age: ParisTime.age(since: backup.finishedAt, strings: renderer.text), size: ByteCountFormatter.string(fromByteCount: backup.bytes, countStyle: .binary),
                overdue: now.timeIntervalSince(backup.finishedAt) > limit)
        }
        func check(_ label: String, _ outcome: BackupCheckOutcome?, _ limit: TimeInterval) -> CheckRow {
            guard let outcome else {
                return CheckRow(label: renderer.text(label), present: false, when: "", age: "", by: "", subject: "", passed: false, detail: "", overdue: true)
            }
            return CheckRow(
                label: renderer.text(label), present: true, when: ParisTime.format(outcome.at), age: ParisTime.age(since: outcome.at, strings: renderer.text),
                by: outcome.by, subject: outcome.subject, passed: outcome.passed, detail: outcome.detail, overdue: now.timeIntervalSince(outcome.at) > limit)
        }
        let archiving = status.archiving
        let model = BackupsModel(
            backups: [row("backup_full", status.latestFull, Overdue.full), row("backup_incremental", status.latestIncremental, Overdue.incremental)],
            retained: "\(status.retained)", lastArchived: archiving.lastArchived ?? "—", lastArchivedAt: archiving.lastArchivedAt.map(ParisTime.format) ?? "—",
            currentWAL: archiving.current ?? "—", segmentsBehind: archiving.segmentsBehind.map(String.init) ?? "—",
            archivingLate: (archiving.segmentsBehind ?? 0) > Overdue.walSegments || archiving.lastArchived == nil,
            failedCount: "\(archiving.failedCount)",
            lastFailed: archiving.lastFailedAt.map { "\(archiving.lastFailed ?? "?") (\(ParisTime.format($0)))" } ?? "—",
            checks: [check("backup_verification", status.lastVerification, Overdue.verification), check("backup_drill", status.lastDrill, Overdue.drill)])
        return .page("backups", title: "backups_title", model)
    }

    struct KeyRow: Sendable {
        let id: String
        let purpose: String
        let state: String
        let created: String
        let rotates: String
        let due: Bool
        let values: String
        let backups: String
    }

    struct RotationRow: Sendable {
        let id: String
        let purpose: String
        let keys: String
        let state: String
        let running: Bool
        let rewritten: String
    }

    struct KeysModel: Sendable {
        let keys: [KeyRow]
        let publicKeys: [KeyRow]
        let rotations: [RotationRow]
        let retainedBackups: String
    }

    /// The keyring's inventory, as `osmosectl keys status` reads it (`KeyInventory.overview`).
    func keys() async throws -> ConsoleView {
        let path = configuration.keyPolicyPath
        let policy = FileManager.default.fileExists(atPath: path) ? try KeyPolicy.load(path: path) : .defaults
        let overview = try await pool.withConnection { try await KeyInventory.overview(policy: policy, on: $0) }
        let now = Date()
        let model = KeysModel(
            keys: overview.keys.map { key in
                KeyRow(
                    id: "\(key.id)", purpose: key.purpose, state: key.state, created: ParisTime.format(key.createdAt),
                    rotates: key.plannedRotation.map(ParisTime.format) ?? "—", due: (key.plannedRotation ?? .distantFuture) <= now,
                    values: Self.grouped(UInt64(max(0, key.totalValues))), backups: "\(key.backups.count)")
            },
            publicKeys: overview.publicKeys.map { key in
                KeyRow(
                    id: "\(key.id)", purpose: key.purpose, state: key.purpose == "journal-signing" && key.state == "decrypt-only" ? "co-signing" : key.state,
                    created: ParisTime.format(key.createdAt), rotates: key.plannedRotation.map(ParisTime.format) ?? "—",
                    due: (key.plannedRotation ?? .distantFuture) <= now, values: key.fingerprint, backups: "\(key.backups.count)")
            },
            rotations: overview.rotations.prefix(20).map { rotation in
                RotationRow(
                    id: "\(rotation.id)", purpose: rotation.purpose.rawValue, keys: "\(rotation.fromKeys.map(String.init).joined(separator: ", ")) → \(rotation.toKey)",
                    state: rotation.state, running: rotation.state == "running", rewritten: Self.grouped(UInt64(max(0, rotation.rewritten))))
            }, retainedBackups: "\(overview.retainedBackups)")
        return .page("keys", title: "keys_title", model)
    }

    struct UnitRow: Sendable {
        let unit: String
        let known: Bool
        let state: String
        let healthy: Bool
        let since: String
        let result: String
        let restarts: String
    }

    struct DaemonsModel: Sendable {
        let units: [UnitRow]
    }

    func daemons() async -> ConsoleView {
        let states = await unitStates.states(of: configuration.console.units)
        let rows = states.map { state in
            UnitRow(
                unit: state.unit, known: state.activeState != nil,
                state: state.activeState.map { "\($0) (\(state.subState ?? "?"))" } ?? renderer.text("unit_unknown"),
                healthy: state.activeState == "active" || (state.activeState == "inactive" && state.result == "success"), since: state.since ?? "—",
                result: state.result ?? "—", restarts: state.restarts ?? "—")
        }
        return .page("daemons", title: "daemons_title", DaemonsModel(units: rows))
    }
}
