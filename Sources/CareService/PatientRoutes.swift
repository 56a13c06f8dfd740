import CareRecords
import Hummingbird

extension CareAPI {
    /// `/v1/patients`: search, registration, reading, identity changes and history.
    func patientRoutes() -> RouteCollection<CareRequestContext> {
        let routes = RouteCollection(context: CareRequestContext.self)
        let api = self
        routes.get { request, context in
            await api.handle(request, context, .init(resource: .patient, policyAction: "search", journalAction: .read, objectType: "patient")) { call, connection in
                let found = try api.store.searchPatients(
                    lastName: call.query["last_name"], firstName: call.query["first_name"], birthDate: call.query["birth_date"], ins: call.query["ins"],
                    on: connection)
                call.audit.listed(found.map { (object: $0.id, patient: $0.id) })
                return try CareAPI.json(found)
            }
        }
        routes.post { request, context in
            await api.handle(request, context, .init(resource: .patient, policyAction: "create", journalAction: .create, objectType: "patient")) { call, connection in
                let input = try CareJSON.decode(PatientInput.self, from: call.body)
                let view = try api.store.createPatient(input, by: call.principal, on: connection)
                call.audit.touched(object: view.id, patient: view.id)
                return try CareAPI.json(view, status: .created)
            }
        }
        routes.get(":id") { request, context in
            await api.handleRecord(request, context, .init(resource: .patient, policyAction: "read", journalAction: .read, objectType: "patient")) { call, patientID, connection in
                call.audit.touched(patient: patientID)
                return try CareAPI.json(try api.store.patient(patientID, on: connection))
            }
        }
        routes.patch(":id") { request, context in
            await api.handleRecord(request, context, .init(resource: .patient, policyAction: "update", journalAction: .update, objectType: "patient")) { call, patientID, connection in
                call.audit.touched(patient: patientID)
                let patch = try CareJSON.decode(PatientPatch.self, from: call.body)
                return try CareAPI.json(try api.store.updatePatient(patientID, patch, by: call.principal, on: connection))
            }
        }
        routes.get(":id/history") { request, context in
            await api.handleRecord(request, context, .init(resource: .patient, policyAction: "history", journalAction: .read, objectType: "patient-history")) {
                call, patientID, connection in
                _ = try api.store.patient(patientID, on: connection)
                call.audit.touched(patient: patientID)
                return try CareAPI.json(try api.store.history(.patient, id: patientID, on: connection))
            }
        }
        return routes
    }
}
