import CareRecords
import Foundation
import Store
import HTTPTypes
import Hummingbird
import Journal

/// The routes the router answers, recorded as they are added (``RecordingRouter``),
/// so that a request no route matched is told whether its path exists with other
/// methods (405, with `Allow`) or not at all (404).
final class RouteTable: Sendable {
    private let routes = Locked<[(path: RouterPath, method: HTTPRequest.Method)]>([])

    /// Records that `path` answers `method`.
    func add(_ path: RouterPath, _ method: HTTPRequest.Method) {
        routes.withLock { $0.append((path, method)) }
    }

    /// The methods some route answers at `path` (a request's raw path), in the order routes were added.
    func methods(answering path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        return routes.withLock { routes in
            var methods: [HTTPRequest.Method] = []
            for route in routes where route.path.count == segments.count && zip(route.path, segments).allSatisfy({ $0 ~= $1 }) {
                if !methods.contains(route.method) { methods.append(route.method) }
            }
            return methods
        }
    }
}

/// Hummingbird's router seen through a ``RouteTable``: every route added through it
/// is recorded, then added to the router, so the table cannot miss one.
struct RecordingRouter: RouterMethods {
    typealias Context = CareRequestContext
    let router: Router<CareRequestContext>
    let table: RouteTable

    @discardableResult
    func on<Responder: HTTPResponder>(_ path: RouterPath, method: HTTPRequest.Method, responder: Responder) -> Self
    where Responder.Context == Context {
        table.add(path, method)
        router.on(path, method: method, responder: responder)
        return self
    }

    @discardableResult
    func add(middleware: any MiddlewareProtocol<Request, Response, Context>) -> Self {
        router.add(middleware: middleware)
        return self
    }
}

/// The router's first middleware: it wraps every route and the router's "not
/// found" answer, so that no request leaves without its event. It refuses a
/// method override header and a NUL in the path or a header before any route
/// runs, and turns "no route" into a journaled 404 (no such path) or 405 (the
/// path exists with other methods, named in `Allow`). HEAD, OPTIONS and TRACE
/// are answered as any unrouted method is.
struct UnroutedRequests: RouterMiddleware {
    typealias Context = CareRequestContext
    let api: CareAPI
    let table: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let refusal = CareAPI.refusalBeforeRouting(request) { return await api.unrouted(request, context, refusal) }
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            // Only the router's own "not found" throws: every endpoint answers with a response.
            let methods = table.methods(answering: request.uri.path)
            guard !methods.isEmpty else {
                return await api.unrouted(request, context, CareError(.noRoute, "no endpoint at this path; see docs/care-service.md"))
            }
            let allowed = methods.map(\.rawValue).joined(separator: ", ")
            return await api.unrouted(request, context, CareError(.methodNotAllowed, "this path answers \(allowed) only"), allow: allowed)
        }
    }
}

extension CareAPI {
    /// Headers by which a client asks a proxy or framework to treat a request as
    /// another method: refused, never honoured, so that what is journaled is what
    /// ran.
    static let methodOverrideHeaders = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"].map { HTTPField.Name($0)! }

    /// The refusal of a request that must not reach any route: a method override
    /// header, or a NUL in its path or in a header.
    static func refusalBeforeRouting(_ request: Request) -> CareError? {
        if let name = methodOverrideHeaders.first(where: { request.headers[$0] != nil }) {
            return CareError(.methodOverride, "\(name.rawName) is refused: send the request with its own method")
        }
        if (request.uri.path.removingPercentEncoding ?? request.uri.path).contains("\0") {
            return CareError(.malformedHTTP, "the path contains a NUL character")
        }
        if let field = request.headers.first(where: { $0.value.contains("\0") }) {
            return CareError(.malformedHTTP, "header \(JournalText.bounded(field.name.rawName, to: 64)) contains a NUL character")
        }
        return nil
    }

    /// Answers a request no endpoint serves with `error`, after recording its event:
    /// its method and path as the object, the patient the path names, the purpose it
    /// declared and whose token it carried, when these can be read.
    func unrouted(_ request: Request, _ context: CareRequestContext, _ error: CareError, allow: String? = nil) async -> Response {
        let audit = audit(request, context, Self.action(of: request.method.rawValue), "route", object: "\(request.method.rawValue) \(request.uri.path)")
        if let purpose = request.headers[.osmosePurpose].flatMap(AccessPurpose.init(rawValue:)) { audit.declare(purpose) }
        var response = await refuse(audit, error, identifyingToken: bearerToken(request))
        if let allow { response.headers[.allow] = allow }
        // An answer to HEAD has no body.
        if request.method == .head { response.body = ResponseBody() }
        return response
    }

    /// The journal action of a request no endpoint serves, by its method: what it
    /// would have done.
    static func action(of method: String) -> AccessAction {
        switch method {
        case "POST": .create
        case "PUT", "PATCH": .update
        case "DELETE": .delete
        default: .read
        }
    }

    /// The record a request's path names (`/v1/patients/{id}…`, `/v1/episodes/{id}…`,
    /// `/v1/transmissions/{id}…`), whether or not a route serves the path.
    static func pathRecord(_ path: String) -> CareStore.PathRecord? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard segments.count >= 3, segments[0] == "v1", let id = try? RecordID(parsing: String(segments[2])).uuid else { return nil }
        switch segments[1] {
        case "patients": return .patient(id)
        case "episodes": return .episode(id)
        case "transmissions": return .transmission(id)
        default: return nil
        }
    }
}
