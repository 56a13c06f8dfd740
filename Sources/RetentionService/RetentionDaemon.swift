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
/// approved and every automatic plan (resuming a run a crash interrupted); then, when
/// the policy marks journal months automatic, computes, stores and applies its own
/// plan of the months due (archive, verify every copy, then purge); then exits.
/// SIGTERM stops it between batches; the next start resumes (docs/retention.md).
public struct RetentionDaemon: AsyncParsableCommand {
    /// Its command line: `--config`, `--dry-run`, `--help` with its exit statuses, `--version`.
    public static let configuration = CommandConfiguration.daemon(
        .retentiond, abstract: "Applies the retention policy: the plans the DPO approved, resuming an interrupted run; then exits.",
        discussion: """
            Reads policies/retention.yaml (refusing it if it contradicts policies/backup.yaml), then applies, oldest \
            first, every approved plan not yet finished (osmosectl retention plan / approve), checking each item again \
            as it goes: still due, not held. Each batch commits with its outcomes; a run killed at any moment resumes \
            at the next start and ends in the same state. A finished run gets its disposition certificate \
            (osmosectl retention certificates). When retention.yaml sets journal.automatic: true, it then archives \
            and purges the journal months due on its own: each month written to every archive directory \
            (archives.directories), each copy read back and verified, only then its partition dropped.

            Master key: the master-key credential, else retention.master_key_file. Archive recipients: the \
            archive-recipients credential (one age1… a line), else archives.recipients.
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
        let journal = try JournalMonthArchives(
            directories: configuration.archives.directories,
            recipients: try JournalMonthArchives.recipients(
                credentialFile: Credentials().path(of: JournalMonthArchives.recipientsCredential), configured: configuration.archives.recipients),
            verifierKeys: configuration.journal.verifierKeys, logger: logger)
        let dryRun = self.dryRun
        let stopped = try await Connection.withConnection(configuration.retentionConnection, applicationName: "osmose-retentiond", logger: logger) {
            connection in
            let ring = try await DataKeyRing.load(on: connection, master: master)
            let applier = PlanApplier(
                policy: loaded.policy, policySHA256: loaded.sha256, ring: ring, journal: journal, actor: .daemon(.retentiond),
                batchSizes: .records(configuration.retention.batchSize), logger: logger)
            let builder = PlanBuilder(policy: loaded.policy, policySHA256: loaded.sha256, ring: ring, journal: journal)
            return try await daemon.runToCompletion(readyStatus: "applying approved retention plans") {
                let plans = try await connection.perform { try PlanStore.applicable(on: $0) }
                if plans.isEmpty { logger.info("no approved plan to apply") }
                for plan in plans {
                    try? notifier.send(["STATUS": "applying plan \(plan)"])
                    let report = try await applier.apply(plan: plan, dryRun: dryRun, stop: { Task.isShuttingDownGracefully }, on: connection)
                    Self.log(report, dryRun: dryRun, logger: logger)
                    if report.interrupted { return true }
                }
                guard loaded.policy.journal.automatic, !Task.isShuttingDownGracefully else { return Task.isShuttingDownGracefully }
                return try await Self.archiveDueMonths(builder: builder, applier: applier, journal: journal, dryRun: dryRun, notifier: notifier, logger: logger, on: connection)
            }
        }
        try? notifier.stopping(status: stopped ? "stopped; the next start resumes" : "done")
    }

    /// The automatic plan (retention.yaml `journal.automatic: true`): the journal
    /// months due today, stored as a plan of kind `automatic` and applied like an
    /// approved one (its run, its outcomes, its certificate). Months held are logged,
    /// never applied. A dry run prints what the plan would hold and stores nothing.
    /// - Returns: true when stopped by SIGTERM before the end.
    static func archiveDueMonths(
        builder: PlanBuilder, applier: PlanApplier, journal: JournalMonthArchives, dryRun: Bool, notifier: SystemdNotifier, logger: Logger,
        on connection: Connection
    ) async throws -> Bool {
        let today = CivilDate(utc: Date())
        let plan = try await builder.plan(kind: .automatic, asOf: today, on: connection)
        for item in plan.held {
            logger.notice(
                "journal month due but kept by a legal hold", metadata: ["osmose.retention.item": "\(item.key)", "osmose.retention.holds": "\(item.heldBy ?? [])"])
        }
        guard !plan.items.isEmpty else {
            logger.info("no journal month due")
            return false
        }
        try journal.checkSettings(for: plan.items)
        if dryRun {
            for item in plan.items { print("would archive and purge  \(item.key)  due \(item.dueOn)  \(item.rule)") }
            return false
        }
        let stored = try await connection.transaction { try PlanStore.save(plan, computedBy: SystemActor.daemon(.retentiond).name, on: $0) }
        try? notifier.send(["STATUS": "archiving \(plan.items.count) journal months (automatic plan \(stored.id))"])
        let report = try await applier.apply(plan: stored.id, stop: { Task.isShuttingDownGracefully }, on: connection)
        log(report, dryRun: false, logger: logger)
        return report.interrupted
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
