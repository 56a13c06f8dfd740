public import HTTPContext

/// The console's request context: the peer address beside Hummingbird's storage.
public typealias ConsoleRequestContext = PeerRequestContext
