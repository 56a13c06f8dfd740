public import CareRecords
public import Foundation
import Journal
public import Store

/// What the daily check found.
public struct DeadlineReport: Sendable, Hashable, Codable {
    /// The day checked, in the controller's time zone.
    public let day: CivilDate
    /// Open requests due within the warning period.
    public let nearing: [RequestSummary]
    /// Open requests past their due day.
    public let past: [RequestSummary]
    /// Openings of restricted records not reported yet.
    public let overrides: [RestrictionOverride]

    /// Whether there is anything to report.
    public var isEmpty: Bool { nearing.isEmpty && past.isEmpty && overrides.isEmpty }

    /// The report as plain text (no patient data: request numbers, kinds, days; staff by login name and team).
    public var text: String {
        var lines = ["Osmose — demandes d'exercice de droits, point du \(day.french)", ""]
        if past.isEmpty && nearing.isEmpty { lines.append("Aucune demande n'approche de son échéance.") }
        for summary in past {
            lines.append("EN RETARD  demande n° \(summary.number) (\(summary.kind.rawValue)) : échéance \(summary.dueOn?.description ?? "?") dépassée de \(-(summary.daysLeft ?? 0)) jour(s)")
        }
        for summary in nearing {
            lines.append("PROCHE     demande n° \(summary.number) (\(summary.kind.rawValue)) : échéance \(summary.dueOn?.description ?? "?"), dans \(summary.daysLeft ?? 0) jour(s)")
        }
        if !overrides.isEmpty {
            lines.append("")
            lines.append("Dossiers limités (RGPD art. 18) ouverts depuis le dernier point :")
            for override in overrides {
                lines.append(
                    "  \(RequestRegister.moment(override.occurredAt))  \(override.username) (\(override.role)\(override.team.map { ", \($0)" } ?? ""))  \(override.endpoint)  fondement \(override.ground.rawValue)  requête \(override.careRequestID)")
            }
        }
        lines.append("")
        lines.append("Détail : osmosectl dsar list --due")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The daily check osmose-dsard runs: requests nearing or past their deadline,
/// and openings of restricted records to report to the DPO. Each finding is a
/// journal event; the overrides are then marked reported.
public struct DeadlineWatch: Sendable {
    let register: RequestRegister
    /// Days before the due day a request is reported as nearing.
    public let warnDays: Int

    /// A check by `register`'s actor, warning `warnDays` days ahead.
    public init(register: RequestRegister, warnDays: Int) {
        self.register = register
        self.warnDays = warnDays
    }

    /// Classifies the open requests as of `now` and collects the unreported overrides, in the caller's transaction.
    public func check(now: Date = Date(), on connection: isolated Connection) throws -> DeadlineReport {
        let day = CivilDate.on(now, in: register.timeZone)
        var nearing: [RequestSummary] = []
        var past: [RequestSummary] = []
        for summary in try register.list(openOnly: true, dueWithin: nil, now: now, on: connection) {
            guard let due = summary.dueOn else { continue }
            switch RequestDeadlines.standing(due: due, today: day, warnDays: warnDays) {
            case .past: past.append(summary)
            case .nearing: nearing.append(summary)
            case .onTime: continue
            }
        }
        return DeadlineReport(
            day: day, nearing: nearing.sorted { $0.number < $1.number }, past: past.sorted { $0.number < $1.number },
            overrides: try PatientRestrictions.unreportedOverrides(on: connection))
    }

    /// Journals each finding of `report` and marks its overrides reported, in the caller's transaction.
    public func record(_ report: DeadlineReport, on connection: isolated Connection) throws {
        for (summaries, reason) in [(report.past, "dsar.deadline.past"), (report.nearing, "dsar.deadline.near")] {
            for summary in summaries {
                try connection.record(
                    AccessEvent.system(
                        by: register.actor, action: .subjectRequest, objectType: "subject-request", objectID: String(summary.number),
                        purpose: .subjectRequest, result: reason == "dsar.deadline.past" ? .error : .success,
                        reason: "\(reason) due \(summary.dueOn?.description ?? "?")"))
            }
        }
        for override in report.overrides {
            try connection.record(
                AccessEvent.system(
                    by: register.actor, action: .subjectRequest, objectType: "restriction-override", objectID: override.id.uuidString.lowercased(),
                    patientID: override.patientID, purpose: .subjectRequest, reason: "dsar.restriction-override.reported \(override.ground.rawValue)"))
        }
        try PatientRestrictions.markReported(report.overrides.map(\.id), on: connection)
    }
}
