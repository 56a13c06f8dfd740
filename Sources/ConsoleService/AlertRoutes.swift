import Backup
import CareRecords
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
    /// The openings of restricted records shown: the newest, over the last 30 days.
    static let overrideAlertLimit = 100

    /// The alerts: spikes of denied access in the last 24 hours (by hour, and who
    /// was denied most), failed journal verifications and failed backup checks in the
    /// last 30 days, openings of restricted records (GDPR art. 18(2)) in the last 30
    /// days, each with its journal entry, and overdue backups, verifications and drills.
    func alerts(_ checked: Checked) async throws -> ConsoleView {
        let now = Date()
        let (denied, failures, overrides) = try await pool.withConnection { connection in
            try await connection.perform { connection in
                (
                    try JournalSearch(result: .denied, occurredFrom: now.addingTimeInterval(-86_400), limit: 20_000).entries(on: connection),
                    try JournalSearch(result: .error, occurredFrom: now.addingTimeInterval(-30 * 86_400), limit: 2_000).entries(on: connection)
                        .filter { $0.objectType == Self.verifyObjectType },
                    try Self.restrictedOpenings(since: now.addingTimeInterval(-30 * 86_400), on: connection)
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
        for (opening, entry) in overrides {
            let who = "\(opening.username) (\(opening.role)\(opening.team.map { ", " + $0 } ?? ""))"
            let detail = [
                ParisTime.format(opening.occurredAt), who, "\(renderer.text("alert_patient")) \(opening.patientID.uuidString.lowercased())",
                "\(renderer.text("alert_ground")) \(renderer.text("ground_" + opening.ground.rawValue))", opening.endpoint,
            ] + (entry == nil ? [renderer.text("alert_not_sequenced")] : [])
            alerts.append(
                Alert(
                    severity: "medium", title: renderer.text("alert_restricted_opening"), detail: detail.joined(separator: " — "),
                    link: entry.map { "/journal/entree/\($0)" }))
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

    /// The openings of restricted records since `since`, newest first, each with the
    /// sequence of its journal event (the care request's event on that patient whose
    /// reason names the ground), nil while osmose-journald has not sequenced it.
    static func restrictedOpenings(since: Date, on connection: isolated Connection) throws -> [(RestrictionOverride, UInt64?)] {
        try PatientRestrictions.overrides(since: since, limit: overrideAlertLimit, on: connection).map { opening in
            let around = JournalSearch(
                patientID: opening.patientID, occurredFrom: opening.occurredAt.addingTimeInterval(-600), occurredBefore: opening.occurredAt.addingTimeInterval(600),
                limit: 1_000)
            let entry = try around.entries(on: connection).first {
                $0.requestID == opening.careRequestID && ($0.reason ?? "").contains("restriction-override:\(opening.ground.rawValue)")
            }
            return (opening, entry?.sequence)
        }
    }
}
