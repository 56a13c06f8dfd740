public import Logging
public import ServiceLifecycle

/// Pings systemd's watchdog at half the configured interval while the process
/// runs, and sends `STOPPING=1` when graceful shutdown begins. Add it to the
/// daemon's `ServiceGroup`; when `WatchdogSec=` is not set it only waits for shutdown.
public struct SystemdWatchdogService: Service {
    private let notifier: SystemdNotifier
    private let logger: Logger

    /// Creates the service.
    public init(notifier: SystemdNotifier, logger: Logger) {
        self.notifier = notifier
        self.logger = logger
    }

    public func run() async throws {
        if let timeout = notifier.watchdogTimeout {
            let interval = timeout / 2
            logger.info("watchdog enabled", metadata: ["osmose.systemd.watchdog_ms": "\(interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000)"])
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    do {
                        try notifier.watchdog()
                    } catch {
                        logger.error("watchdog ping failed", metadata: ["osmose.error": "\(error)"])
                    }
                    try? await Task.sleep(for: interval)
                }
            }
        } else {
            try? await gracefulShutdown()
        }
        do {
            try notifier.stopping(status: "shutting down")
        } catch {
            logger.warning("could not tell systemd we are stopping", metadata: ["osmose.error": "\(error)"])
        }
    }
}
