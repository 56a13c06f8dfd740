import Foundation
public import Store

/// Team codes and the accounts list.
extension CareStore {
    func teamID(code: String, on connection: isolated Connection) throws -> UUID? {
        try connection.query("SELECT id FROM care.teams WHERE code = $1", [code]).rows.first.map { try $0.uuid("id") }
    }

    /// Every account, without password hashes.
    public func users(on connection: isolated Connection) throws -> [UserView] { try UserDirectory.list(on: connection) }
}
