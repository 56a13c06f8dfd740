public import Hummingbird
import NIOCore

/// The per-request context of the suite's HTTP services (osmose-care and
/// osmose-console): Hummingbird's core storage plus the peer address, which each
/// request's access event records.
public struct PeerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connecting peer's IP address; nil on a Unix socket.
    public let peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress
    }
}
