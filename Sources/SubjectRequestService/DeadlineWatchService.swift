import Foundation
import Journal
import Logging
import ServiceLifecycle
import Store
import SubjectRequests
import Systemd

/// The daily check, as a service: at start, then every `interval`, finds the
/// requests nearing or past their deadline and the unreported openings of
/// restricted records; journals each finding, logs it, and mails the report when
/// a mail command is configured. A failed check is logged and retried at the next
/// interval (an unreachable database must not stop the daemon's other work).
struct DeadlineWatchService: Service {
    let connectionString: String
    let timeZone: TimeZone
    let warnDays: Int
    let interval: Duration
    let mail: MailCommand
    let logger: Logger
    let notifier: SystemdNotifier

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            await checkOnce()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// One check; returns the report, or nil when it failed (logged).
    @discardableResult
    func checkOnce(now: Date = Date()) async -> DeadlineReport? {
        let register = RequestRegister(actor: .daemon(.dsard), timeZone: timeZone, ring: nil)
        let watch = DeadlineWatch(register: register, warnDays: warnDays)
        do {
            let report = try await Connection.withConnection(connectionString, applicationName: "osmose-dsard", logger: logger) { connection in
                try await connection.transaction { connection in
                    let report = try watch.check(now: now, on: connection)
                    try watch.record(report, on: connection)
                    return report
                }
            }
            for summary in report.past {
                logger.error(
                    "subject request past its deadline",
                    metadata: ["osmose.dsar.request": "\(summary.number)", "osmose.dsar.due": "\(summary.dueOn?.description ?? "?")", "osmose.dsar.kind": "\(summary.kind.rawValue)"])
            }
            for summary in report.nearing {
                logger.warning(
                    "subject request nearing its deadline",
                    metadata: ["osmose.dsar.request": "\(summary.number)", "osmose.dsar.due": "\(summary.dueOn?.description ?? "?")", "osmose.dsar.kind": "\(summary.kind.rawValue)"])
            }
            for override in report.overrides {
                logger.warning(
                    "restricted record opened",
                    metadata: ["osmose.dsar.override": "\(override.id)", "osmose.dsar.ground": "\(override.ground.rawValue)", "osmose.care.request": "\(override.careRequestID)"])
            }
            logger.info(
                "deadlines checked",
                metadata: ["osmose.dsar.past": "\(report.past.count)", "osmose.dsar.nearing": "\(report.nearing.count)", "osmose.dsar.overrides": "\(report.overrides.count)"])
            try? notifier.send(["STATUS": "checked \(report.day): \(report.past.count) past, \(report.nearing.count) nearing, \(report.overrides.count) overrides"])
            if !report.isEmpty, mail.isConfigured {
                do {
                    try await mail.send(subject: "[osmose] demandes d'exercice de droits : \(report.past.count) en retard, \(report.nearing.count) proche(s)", body: report.text)
                } catch {
                    logger.error("the report could not be mailed", metadata: ["osmose.error": "\(error)"])
                }
            }
            return report
        } catch {
            logger.error("the deadline check failed; retried at the next interval", metadata: ["osmose.error": "\(error)"])
            return nil
        }
    }
}
