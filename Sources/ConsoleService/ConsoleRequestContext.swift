public import Hummingbird
import NIOCore

/// The per-request context: Hummingbird's core storage plus the peer address,
/// which the access event records.
public struct ConsoleRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connecting peer's IP address; nil on a Unix socket.
    public let peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress
    }
}
