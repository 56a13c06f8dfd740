public import Hummingbird
import HummingbirdCore
public import Logging
import NIOCore

extension CareAPI {
    /// The router with every endpoint (documented in docs/care-service.md): one route
    /// collection per resource, each in its own file, behind ``UnroutedRequests``,
    /// which journals what no route serves.
    public func router() -> Router<CareRequestContext> {
        let router = Router(context: CareRequestContext.self)
        let table = RouteTable()
        router.add(middleware: UnroutedRequests(api: self, table: table))
        let routes = RecordingRouter(router: router, table: table)
        routes.addRoutes(sessionRoutes(), atPath: "/v1/auth")
        routes.addRoutes(patientRoutes(), atPath: "/v1/patients")
        routes.addRoutes(episodeRoutes(), atPath: "/v1/episodes")
        routes.addRoutes(handoverRoutes(), atPath: "/v1/episodes")
        routes.addRoutes(transmissionRoutes(), atPath: "/v1")
        routes.addRoutes(userRoutes(), atPath: "/v1/users")
        // Liveness for the supervisor: no data, no user, and the one request not journaled.
        routes.get("/v1/health") { _, _ in
            var fields = HTTPFields()
            fields[.contentType] = "application/json"
            fields[.cacheControl] = "no-store"
            return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        return router
    }

    /// The HTTP server: the router on Hummingbird's HTTP/1.1 channel, with a
    /// malformed request answered and journaled (``CareHTTPChannel``) and an idle
    /// connection closed after a minute.
    /// - Parameters:
    ///   - address: where to listen.
    ///   - serverName: the `Server` header, if any.
    ///   - onServerRunning: called once listening (systemd's READY).
    ///   - logger: the server's logger.
    public func application(
        address: BindAddress, serverName: String? = nil, onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }, logger: Logger
    ) -> some ApplicationProtocol {
        let api = self
        return Application(
            router: router(),
            server: HTTPServerBuilder { responder in
                CareHTTPChannel(
                    inner: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: .seconds(60))),
                    answer: { await api.malformed($0) })
            },
            configuration: .init(address: address, serverName: serverName), onServerRunning: onServerRunning, logger: logger)
    }
}
