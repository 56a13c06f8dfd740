public import Logging
public import Systemd

/// What an HTTP daemon (osmose-care, osmose-console) does once its server listens.
public enum Listening {
    /// Gives a Unix socket to its group (`socket_group`), logs the address under
    /// `metadataKey`, and tells systemd READY. When the socket cannot be given to its
    /// group, the error is logged and READY withheld: systemd then fails the start at
    /// TimeoutStartSec=, rather than run a service its reverse proxy cannot reach.
    public static func announce(
        listen: String, address: String?, socketGroup: SocketGroup?, notifier: SystemdNotifier, logger: Logger, metadataKey: String
    ) {
        if let socketGroup, listen.hasPrefix("unix:") {
            let path = String(listen.dropFirst(5))
            do {
                try socketGroup.grant(socketAt: path)
            } catch {
                logger.critical("the socket cannot be given to its group: not ready", metadata: ["osmose.error": "\(error)"])
                return
            }
        }
        logger.info("serving", metadata: [metadataKey: "\(address ?? listen)"])
        try? notifier.ready(status: "serving on \(listen)")
    }
}
