import CareRecords
import Foundation
import Hummingbird
import Store

extension CareAPI {
    /// `/v1/episodes`: listing, opening, reading, changes, closing and history of care episodes.
    func episodeRoutes() -> RouteCollection<CareRequestContext> {
        let routes = RouteCollection(context: CareRequestContext.self)
        let api = self
        routes.get { request, context in
            await api.handle(request, context, .init(resource: .episode, policyAction: "list", journalAction: .read, objectType: "episode-list")) { call, connection in
                let episodes = try api.store.listEpisodes(
                    team: call.query["team"], state: call.query["state"] ?? "open", for: call.principal, teamScoped: call.teamScoped, on: connection)
                call.audit.listed(episodes.map { (object: $0.id, patient: $0.patientId) })
                return try CareAPI.json(episodes)
            }
        }
        routes.post { request, context in
            await api.handle(request, context, .init(resource: .episode, policyAction: "create", journalAction: .create, objectType: "episode")) { call, connection in
                let input = try CareJSON.decode(EpisodeInput.self, from: call.body)
                call.audit.touched(patient: input.patientId)
                let view = try api.store.createEpisode(input, by: call.principal, teamScoped: call.teamScoped, on: connection)
                call.audit.touched(object: view.id)
                return try CareAPI.json(view, status: .created)
            }
        }
        routes.get(":id") { request, context in
            await api.handleRecord(request, context, .init(resource: .episode, policyAction: "read", journalAction: .read, objectType: "episode")) { call, episodeID, connection in
                try CareAPI.json(try api.episode(episodeID, call, connection))
            }
        }
        routes.patch(":id") { request, context in
            await api.handleRecord(request, context, .init(resource: .episode, policyAction: "update", journalAction: .update, objectType: "episode")) { call, episodeID, connection in
                _ = try api.episode(episodeID, call, connection)
                let patch = try CareJSON.decode(EpisodePatch.self, from: call.body)
                return try CareAPI.json(try api.store.updateEpisode(episodeID, patch, by: call.principal, teamScoped: call.teamScoped, on: connection))
            }
        }
        routes.post(":id/close") { request, context in
            await api.handleRecord(request, context, .init(resource: .episode, policyAction: "close", journalAction: .update, objectType: "episode")) { call, episodeID, connection in
                _ = try api.episode(episodeID, call, connection)
                return try CareAPI.json(try api.store.closeEpisode(episodeID, by: call.principal, teamScoped: call.teamScoped, on: connection))
            }
        }
        routes.get(":id/history") { request, context in
            await api.handleRecord(request, context, .init(resource: .episode, policyAction: "history", journalAction: .read, objectType: "episode-history")) {
                call, episodeID, connection in
                _ = try api.episode(episodeID, call, connection)
                return try CareAPI.json(try api.store.history(.episode, id: episodeID, on: connection))
            }
        }
        return routes
    }

    /// Reads the path's episode, records its patient in the audit, then checks team
    /// scope: a refused request's event still names the patient.
    func episode(_ id: UUID, _ call: Call, _ connection: isolated Connection) throws -> EpisodeView {
        let view = try store.episode(id, for: call.principal, teamScoped: false, on: connection)
        call.audit.touched(patient: view.patientId)
        try store.checkScope(view, call.principal, call.teamScoped)
        return view
    }
}
