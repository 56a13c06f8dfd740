public import Logging
public import ServiceLifecycle
public import Systemd

/// What an HTTP daemon (osmose-care, osmose-console) does once its server listens,
/// as a service of the daemon's group: ``announce(listen:address:)`` gives a Unix
/// socket to its group (`socket_group`), logs the address and tells systemd READY.
/// When the socket cannot be given to its group, READY is never sent and ``run()``
/// throws the error, which ends the group: the daemon exits with status 3 (the
/// units' RestartPreventExitStatus=), and a service its reverse proxy cannot reach
/// never runs.
public final class Listening: Service, Sendable {
    let socketGroup: SocketGroup?
    let notifier: SystemdNotifier
    let logger: Logger
    /// The logging metadata key of the address (`osmose.care.address`…).
    let metadataKey: String
    let failures: AsyncStream<SystemdError>
    let failure: AsyncStream<SystemdError>.Continuation

    public init(socketGroup: SocketGroup?, notifier: SystemdNotifier, logger: Logger, metadataKey: String) {
        self.socketGroup = socketGroup
        self.notifier = notifier
        self.logger = logger
        self.metadataKey = metadataKey
        (failures, failure) = AsyncStream.makeStream(of: SystemdError.self)
    }

    /// Called once the server listens on `listen` (its bound `address` when known).
    public func announce(listen: String, address: String?) {
        if let socketGroup, listen.hasPrefix("unix:") {
            do {
                try socketGroup.grant(socketAt: String(listen.dropFirst(5)))
            } catch let error as SystemdError {
                failure.yield(error)
                return
            } catch {
                failure.yield(SystemdError(.socketGroup, "\(error)"))
                return
            }
        }
        logger.info("serving", metadata: [metadataKey: "\(address ?? listen)"])
        try? notifier.ready(status: "serving on \(listen)")
    }

    /// Waits until the daemon shuts down, or throws the first failure to announce.
    public func run() async throws {
        for await error in failures.cancelOnGracefulShutdown() {
            throw error
        }
    }
}
