import CareRecords
import Hummingbird

extension CareAPI {
    /// `/v1/episodes/{id}/export`: an episode's follow-up as JSON, or as the
    /// printable handover sheet (``HandoverSheet``); an export event.
    func handoverRoutes() -> RouteCollection<CareRequestContext> {
        let routes = RouteCollection(context: CareRequestContext.self)
        let api = self
        routes.get(":id/export") { request, context in
            await api.handleRecord(request, context, .init(resource: .episode, policyAction: "export", journalAction: .export, objectType: "episode")) {
                call, episodeID, connection in
                _ = try api.episode(episodeID, call, connection)
                let export = try api.store.export(episodeID: episodeID, by: call.principal, teamScoped: call.teamScoped, on: connection)
                switch call.query["format"] ?? "json" {
                case "json": return try CareAPI.json(export)
                case "html": return .html(HandoverSheet.render(export))
                default: throw CareError(.invalidQuery, "format must be json or html")
                }
            }
        }
        return routes
    }
}
