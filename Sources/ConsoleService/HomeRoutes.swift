import Foundation
import Hummingbird
import Journal
import StaffAccounts
import Store

extension Console {
    /// The home page (the sections of the role) and the account page (recovery codes).
    func addHomeRoutes(to router: Router<ConsoleRequestContext>) {
        let console = self
        router.get("/") { request, context in
            await console.serve(request, context, .read, "console-home", audience: .anyStaff) { checked in
                .page("home", title: "home_title", HomeModel(name: checked.session.principal.displayName, links: console.userPanel(checked.session.principal).links.dropFirst().dropLast().map { $0 }))
            }
        }
        router.get("/compte") { request, context in
            await console.serve(request, context, .read, "console-account", audience: .anyStaff) { checked in try await console.account(checked, codes: nil) }
        }
        router.post("/compte/codes-de-secours") { request, context in
            await console.serve(request, context, .userAdmin, "staff-recovery-codes", audience: .anyStaff) { checked in
                let (secondFactor, principal) = (console.secondFactor, checked.session.principal)
                let codes = try await console.pool.transaction { connection in
                    let codes = try secondFactor.replaceRecoveryCodes(for: principal, on: connection)
                    checked.audit.touched(object: principal.id.uuidString.lowercased())
                    checked.audit.note("recovery codes replaced")
                    try checked.audit.recordSuccess(on: connection)
                    return codes
                }
                return try await console.account(checked, codes: codes)
            }
        }
    }

    struct HomeModel: Sendable {
        let name: String
        let links: [UserPanel.Link]
    }

    struct AccountModel: Sendable {
        let username: String
        let role: String
        let remaining: String
        let newCodes: [String]
        let hasNewCodes: Bool
    }

    func account(_ checked: Checked, codes: [String]?) async throws -> ConsoleView {
        let (secondFactor, principal) = (self.secondFactor, checked.session.principal)
        let remaining = try await pool.withConnection { connection in
            try await connection.perform { try secondFactor.remainingRecoveryCodes(for: principal, on: $0) }
        }
        return .page(
            "account", title: "account_title",
            AccountModel(
                username: principal.username, role: renderer.text("role_" + principal.role.rawValue), remaining: "\(remaining)", newCodes: codes ?? [],
                hasNewCodes: codes != nil))
    }
}
