public import HTTPContext

/// The care API's request context: the peer address beside Hummingbird's storage.
public typealias CareRequestContext = PeerRequestContext
