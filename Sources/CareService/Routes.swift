public import Hummingbird
import NIOCore

extension CareAPI {
    /// The router with every endpoint (documented in docs/api.md and docs/openapi.yaml):
    /// one route collection per resource, each in its own file.
    public func router() -> Router<CareRequestContext> {
        let router = Router(context: CareRequestContext.self)
        router.addRoutes(sessionRoutes(), atPath: "/v1/auth")
        router.addRoutes(patientRoutes(), atPath: "/v1/patients")
        router.addRoutes(episodeRoutes(), atPath: "/v1/episodes")
        router.addRoutes(handoverRoutes(), atPath: "/v1/episodes")
        router.addRoutes(transmissionRoutes(), atPath: "/v1")
        router.addRoutes(userRoutes(), atPath: "/v1/users")
        router.get("/v1/health") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        return router
    }
}
