import Backup
import Foundation
import Journal
import StaffAccounts
import Store

extension Console {
    struct Alert: Sendable {
        let severity: String
        let title: String
        let detail: String
        let link: String?
    }

    struct DeniedHour: Sendable {
        let hour: String
        let count: String
        let spike: Bool
    }

    struct AlertsModel: Sendable {
        let alerts: [Alert]
        let none: Bool
        let deniedHours: [DeniedHour]
        let deniedTotal: String
        let threshold: String
    }

    /// Denied attempts in one hour from this many on are a spike.
    static let deniedSpikeThreshold = 20

    /// The alerts: spikes of denied access in the last 24 hours (by hour, and who
    /// was denied most), failed journal verifications and failed backup checks in the
    /// last 30 days, and overdue backups, verifications and drills.
    func alerts(_ checked: Checked) async throws -> ConsoleView {
        let now = Date()
        let (denied, failures) = try await pool.withConnection { connection in
            try await connection.perform { connection in
                (
                    try JournalSearch(result: .denied, occurredFrom: now.addingTimeInterval(-86_400), limit: 20_000).entries(on: connection),
                    try JournalSearch(result: .error, occurredFrom: now.addingTimeInterval(-30 * 86_400), limit: 2_000).entries(on: connection)
                        .filter { $0.objectType == Self.verifyObjectType }
                )
            }
        }
        let status = try await backupStatus()
        var alerts: [Alert] = []
        var byHour: [Int64: Int] = [:]
        var byHourActor: [Int64: [String: Int]] = [:]
        for entry in denied {
            let hour = entry.occurredAt / 3_600_000_000
            byHour[hour, default: 0] += 1
            byHourActor[hour, default: [:]][entry.actorUsername ?? entry.clientIP ?? "?", default: 0] += 1
        }
        let hours = byHour.sorted { $0.key > $1.key }
        for (hour, count) in hours where count >= Self.deniedSpikeThreshold {
            // Who was denied most in that hour (ties by name, so that the line is stable).
            let top = (byHourActor[hour] ?? [:]).sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(3).map { "\($0.key) (\($0.value))" }
            alerts.append(
                Alert(
                    severity: "high", title: renderer.text("alert_denied_spike"),
                    detail: "\(ParisTime.format(microseconds: hour * 3_600_000_000)) : \(count) — \(top.joined(separator: ", "))", link: nil))
        }
        for failure in failures {
            alerts.append(
                Alert(
                    severity: "high", title: renderer.text("alert_verify_failed"),
                    detail: "\(ParisTime.format(microseconds: failure.occurredAt)) — \(failure.reason ?? "")", link: "/journal/entree/\(failure.sequence)"))
        }
        for outcome in [status.lastVerification, status.lastDrill].compactMap({ $0 }) where !outcome.passed {
            alerts.append(Alert(severity: "high", title: renderer.text("alert_backup_check_failed"), detail: "\(ParisTime.format(outcome.at)) — \(outcome.detail)", link: nil))
        }
        let overdue: [(String, Date?, TimeInterval)] = [
            ("backup_full", status.latestFull?.finishedAt, Overdue.full), ("backup_incremental", status.latestIncremental?.finishedAt, Overdue.incremental),
            ("backup_verification", status.lastVerification?.at, Overdue.verification), ("backup_drill", status.lastDrill?.at, Overdue.drill),
        ]
        for (label, date, limit) in overdue where date.map({ now.timeIntervalSince($0) > limit }) ?? true {
            alerts.append(
                Alert(
                    severity: "medium", title: "\(renderer.text("alert_overdue")) : \(renderer.text(label))",
                    detail: date.map { "\(renderer.text("alert_last")) \(ParisTime.format($0))" } ?? renderer.text("alert_never"), link: nil))
        }
        if (status.archiving.segmentsBehind ?? 0) > Overdue.walSegments {
            alerts.append(
                Alert(
                    severity: "medium", title: renderer.text("alert_wal_lag"), detail: "\(status.archiving.segmentsBehind ?? 0) \(renderer.text("unit_segments"))", link: nil))
        }
        let model = AlertsModel(
            alerts: alerts, none: alerts.isEmpty,
            deniedHours: hours.map { hour, count in
                DeniedHour(hour: ParisTime.format(microseconds: hour * 3_600_000_000), count: "\(count)", spike: count >= Self.deniedSpikeThreshold)
            },
            deniedTotal: "\(denied.count)", threshold: "\(Self.deniedSpikeThreshold)")
        return .page("alerts", title: "alerts_title", model)
    }
}
