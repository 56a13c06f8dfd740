import CareRecords
import Hummingbird

extension CareAPI {
    /// Transmissions: `/v1/episodes/{id}/transmissions` (list, write) and
    /// `/v1/transmissions/{id}` (retract), mounted at `/v1`.
    func transmissionRoutes() -> RouteCollection<CareRequestContext> {
        let routes = RouteCollection(context: CareRequestContext.self)
        let api = self
        routes.get("episodes/:id/transmissions") { request, context in
            await api.handleRecord(request, context, .init(resource: .transmission, policyAction: "list", journalAction: .read, objectType: "transmission-list")) {
                call, episodeID, connection in
                _ = try api.episode(episodeID, call, connection)
                return try CareAPI.json(try api.store.transmissions(episodeID: episodeID, for: call.principal, teamScoped: call.teamScoped, on: connection))
            }
        }
        routes.post("episodes/:id/transmissions") { request, context in
            await api.handleRecord(request, context, .init(resource: .transmission, policyAction: "create", journalAction: .create, objectType: "transmission")) {
                call, episodeID, connection in
                _ = try api.episode(episodeID, call, connection)
                let input = try CareJSON.decode(TransmissionInput.self, from: call.body)
                let view = try api.store.createTransmission(episodeID: episodeID, input, by: call.principal, teamScoped: call.teamScoped, on: connection)
                call.audit.touched(object: view.id)
                return try CareAPI.json(view, status: .created)
            }
        }
        routes.delete("transmissions/:id") { request, context in
            await api.handleRecord(request, context, .init(resource: .transmission, policyAction: "retract", journalAction: .delete, objectType: "transmission")) {
                call, transmissionID, connection in
                let (view, patientID) = try api.store.retractTransmission(transmissionID, by: call.principal, teamScoped: call.teamScoped, on: connection)
                call.audit.touched(patient: patientID)
                return try CareAPI.json(view)
            }
        }
        return routes
    }
}
