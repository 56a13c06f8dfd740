import Hummingbird

extension CareAPI {
    /// `/v1/users`: the accounts list, for administrators.
    func userRoutes() -> RouteCollection<CareRequestContext> {
        let routes = RouteCollection(context: CareRequestContext.self)
        let api = self
        routes.get { request, context in
            await api.handle(request, context, .init(resource: .user, policyAction: "list", journalAction: .read, objectType: "user-list")) { _, connection in
                try CareAPI.json(try api.store.users(on: connection))
            }
        }
        return routes
    }
}
