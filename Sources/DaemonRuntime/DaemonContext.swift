public import Foundation
import Store
public import Journal
public import Logging
public import ServiceLifecycle
public import Settings
public import Systemd

/// How long a daemon may take to stop once SIGTERM arrives: its services shut down
/// gracefully within ``graceful``, are then cancelled, and must be gone within
/// ``cancellation`` more (ServiceLifecycle then ends the process). Together they stay
/// below every unit's `TimeoutStopSec=` (30 s), after which systemd sends SIGKILL.
public enum ShutdownDeadline {
    /// Graceful shutdown: each service finishes what it is doing (the current batch).
    public static let graceful: Duration = .seconds(20)
    /// Cancellation, after the graceful deadline.
    public static let cancellation: Duration = .seconds(5)
    /// The longest a stop can take.
    public static var total: Duration { graceful + cancellation }
}

/// What every daemon sets up before its own work, in the same way: the
/// configuration, a logger in the form journald understands at the configured
/// level, and the systemd notifier. Then runs the daemon's services in one
/// `ServiceGroup` that stops gracefully on SIGTERM or SIGINT within ``ShutdownDeadline``.
public struct DaemonContext: Sendable {
    /// The daemon.
    public let program: SuiteProgram
    /// The configuration file read.
    public let configurationPath: String
    /// The suite's configuration.
    public let configuration: SuiteConfiguration
    /// The daemon's logger: ``Systemd/JournaldLogHandler`` (journal or console form, detected),
    /// at `logging.level`.
    public let logger: Logger
    /// Tells systemd about readiness, status and stopping (does nothing outside systemd).
    public let notifier: SystemdNotifier

    /// Reads the configuration the options name and sets up logging and sd_notify.
    /// - Parameters:
    ///   - program: the daemon.
    ///   - logLabel: the logger's label, e.g. `osmose.journal`.
    ///   - options: the parsed command line.
    ///   - environment: where `$OSMOSE_CONFIG`, `$JOURNAL_STREAM` and `$NOTIFY_SOCKET` are read.
    /// - Throws: ``Settings/ConfigurationError`` (exit status 3).
    public init(
        _ program: SuiteProgram, logLabel: String, options: DaemonOptions,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        self.program = program
        configurationPath = options.configurationPath(environment: environment)
        configuration = try SuiteConfiguration.load(path: configurationPath)
        let format = JournaldLogHandler.Format.detect(environment: environment)
        var logger = Logger(label: logLabel) { JournaldLogHandler(label: $0, format: format) }
        logger.logLevel = Logger.Level(rawValue: configuration.logging.level) ?? .info
        self.logger = logger
        notifier = SystemdNotifier(environment: environment)
    }

    /// Runs `services`, and the systemd watchdog service after them, in one
    /// `ServiceGroup` until they end or SIGTERM (or SIGINT) shuts them down
    /// gracefully, in reverse order: `STOPPING=1` is sent first.
    /// - Throws: the first error a service threw, with which the daemon then exits.
    public func runServiceGroup(_ services: [ServiceGroupConfiguration.ServiceConfiguration]) async throws {
        var configuration = ServiceGroupConfiguration(
            services: services + [.init(service: SystemdWatchdogService(notifier: notifier, logger: logger))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = ShutdownDeadline.graceful
        configuration.maximumCancellationDuration = ShutdownDeadline.cancellation
        try await ServiceGroup(configuration: configuration).run()
    }

    /// Runs a daemon that does its work and exits (started by a timer or on demand)
    /// as the one service of its group: `READY=1` with `readyStatus` once SIGTERM is
    /// handled, then `work`. On SIGTERM, `Task.isShuttingDownGracefully` turns true
    /// inside `work`, which stops at its next safe point (between batches) and returns.
    /// - Returns: what `work` returned.
    /// - Throws: what `work` threw; `CancellationError` when the shutdown deadline
    ///   passed before it returned.
    public func runToCompletion<Result: Sendable>(
        readyStatus: String, _ work: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        let outcome = WorkOutcome<Result>()
        let notifier = self.notifier
        let service = ClosureService {
            try? notifier.ready(status: readyStatus)
            outcome.store(try await work())
        }
        try await runServiceGroup([
            .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
        ])
        guard let result = outcome.stored() else { throw CancellationError() }
        return result
    }
}

/// The value a run-to-completion service returned, handed from its task to the caller.
private final class WorkOutcome<Value: Sendable>: Sendable {
    private let value = Locked<Value?>(nil)

    func store(_ result: Value) { value.withLock { $0 = result } }
    func stored() -> Value? { value.withLock { $0 } }
}
