public import ArgumentParser
public import DaemonRuntime
import Foundation
import Journal
import Keyring
import Logging
public import Retention
import ServiceLifecycle
import Settings
import Store
import Systemd

/// `osmose-retentiond`: started daily by its timer, it applies every plan the DPO
/// approved and every automatic plan (resuming a run a crash interrupted), then
/// exits. SIGTERM stops it between batches; the next start resumes. Journal months
/// enter plans once the cold-archive library is wired in (docs/retention.md).
public struct RetentionDaemon: AsyncParsableCommand {
    /// Its command line: `--config`, `--dry-run`, `--help` with its exit statuses, `--version`.
    public static let configuration = CommandConfiguration.daemon(
        .retentiond, abstract: "Applies the retention policy: the plans the DPO approved, resuming an interrupted run; then exits.",
        discussion: """
            Reads policies/retention.yaml (refusing it if it contradicts policies/backup.yaml), then applies, oldest \
            first, every approved plan not yet finished (osmosectl retention plan / approve), checking each item again \
            as it goes: still due, not held. Each batch commits with its outcomes; a run killed at any moment resumes \
            at the next start and ends in the same state. A finished run gets its disposition certificate \
            (osmosectl retention certificates).

            Master key: the master-key credential, else retention.master_key_file.
            """,
        exitStatuses: [.success, .failure, .invalidConfiguration, .databaseUnavailable, .integrity, .keyUnavailable],
        statusDetails: [
            .success: "done (or nothing to do), or stopped by SIGTERM between batches",
            .integrity: "a stored plan or certificate no longer matches its digest (nothing is changed)",
            .keyUnavailable: "the master key is missing or not the one that wrapped the keyring (nothing is changed)",
        ])

    /// The daemon's options (`--config`).
    @OptionGroup public var options: DaemonOptions

    /// Say what would be done; change nothing.
    @Flag(name: .long, help: "Check every item of every applicable plan as applying would, and print what would be done; change nothing.")
    public var dryRun = false

    /// Creates the command with no options given.
    public init() {}

    /// Applies every applicable plan, or until SIGTERM.
    public func run() async throws {
        let daemon = try DaemonContext(.retentiond, logLabel: "osmose.retention", options: options)
        let configuration = daemon.configuration
        let logger = daemon.logger
        let notifier = daemon.notifier
        let loaded = try LoadedRetentionPolicy.load(configuration)
        let master = try MasterKey.load(
            credential: Credentials().path(of: MasterKey.credentialName), orFile: configuration.retention.masterKeyFile, setting: "retention.master_key_file")
        let dryRun = self.dryRun
        let stopped = try await Connection.withConnection(configuration.retentionConnection, applicationName: "osmose-retentiond", logger: logger) {
            connection in
            let ring = try await DataKeyRing.load(on: connection, master: master)
            let applier = PlanApplier(
                policy: loaded.policy, policySHA256: loaded.sha256, ring: ring, actor: .daemon(.retentiond),
                batchSizes: .records(configuration.retention.batchSize), logger: logger)
            return try await daemon.runToCompletion(readyStatus: "applying approved retention plans") {
                let plans = try await connection.perform { try PlanStore.applicable(on: $0) }
                if plans.isEmpty { logger.info("no approved plan to apply") }
                for plan in plans {
                    try? notifier.send(["STATUS": "applying plan \(plan)"])
                    let report = try await applier.apply(plan: plan, dryRun: dryRun, stop: { Task.isShuttingDownGracefully }, on: connection)
                    Self.log(report, dryRun: dryRun, logger: logger)
                    if report.interrupted { return true }
                }
                return Task.isShuttingDownGracefully
            }
        }
        try? notifier.stopping(status: stopped ? "stopped; the next start resumes" : "done")
    }

    static func log(_ report: PlanApplier.Report, dryRun: Bool, logger: Logger) {
        let done = report.outcomes.filter { $0.outcome == .done }.count
        let skipped = report.outcomes.count - done
        logger.notice(
            dryRun ? "dry run: nothing changed" : (report.interrupted ? "run interrupted; the next start resumes" : "run finished"),
            metadata: [
                "osmose.retention.plan": "\(report.plan)", "osmose.retention.run": "\(report.run.map(String.init) ?? "-")",
                "osmose.retention.done": "\(done)", "osmose.retention.skipped": "\(skipped)",
                "osmose.retention.certificate": "\(report.certificateSHA256 ?? "-")",
            ])
        if dryRun {
            for outcome in report.outcomes {
                print("\(outcome.outcome == .done ? "would apply" : "would skip ")  \(outcome.key)  \(outcome.detail)")
            }
        }
    }
}

extension RetentionError: ExitStatusProviding {
    /// 5 when a stored plan or certificate no longer matches its digest; 3 when the
    /// archive settings are unusable; else 1.
    public var exitStatus: ExitStatus {
        switch code {
        case .planModified: .integrity
        case .archiveUnavailable: .invalidConfiguration
        default: .failure
        }
    }
}
