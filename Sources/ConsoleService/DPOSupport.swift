import Foundation
import HTTPTypes
import Journal
import Keyring
import StaffAccounts
import Store

/// What the DPO's pages share: who acts, the keyring, and how a refusal of the
/// capability libraries (a stable code, never patient data) becomes a page.
extension Console {
    /// The DPO's pages admit the DPO only.
    static let dpoOnly = Audience.roles([.dpo])

    /// The signed-in DPO as the libraries record her: events under `osmose-console`
    /// with her role, her login name as the username, and records naming her
    /// (`opened_by`, `placed_by`, `approved_by`) as `username via osmose-console`.
    func dpoActor(_ checked: Checked) -> SystemActor {
        .console("\(checked.session.principal.username) via osmose-console", role: .dpo)
    }

    /// The keyring, read again for each request that decrypts (a rotation made
    /// since the last one is then seen at once).
    /// - Throws: ``ConsolePageError/noMasterKey`` when the console holds no master key.
    func keyring() async throws -> DataKeyRing {
        guard let masterKey else { throw ConsolePageError.noMasterKey }
        return try await pool.withConnection { connection in try await DataKeyRing.load(on: connection, master: masterKey) }
    }

    /// The page of a library's refusal: its catalogue message when the catalogue has
    /// one for the code (`error_dsar_closed`), else the general one; the code shown.
    func refusal(code: String, status: HTTPResponse.Status) -> ConsolePageError {
        let key = "error_" + code.replacingOccurrences(of: ".", with: "_")
        return ConsolePageError(code: code, status: status, messageKey: renderer.strings[key] == nil ? "error_action_refused" : key, denied: false)
    }

    /// A positive whole number from a path parameter, or a 404.
    static func number(_ text: String?) throws -> Int64 {
        guard let text, let value = Int64(text), value > 0 else { throw ConsolePageError.notFound }
        return value
    }
}

extension ConsolePageError {
    /// The console was started without the `master-key` credential: the DPO's pages that decrypt show nothing.
    static let noMasterKey = ConsolePageError(
        code: "console.master_key_missing", status: .serviceUnavailable, messageKey: "error_no_master_key", denied: false)
}
