import Foundation
public import Store

/// Team codes and the accounts list.
extension CareStore {
    func teamID(code: String, on connection: isolated Connection) throws -> UUID? {
        try UserDirectory.teamID(code: code, on: connection)
    }

    /// Every account, without password hashes.
    public func users(on connection: isolated Connection) throws -> [UserView] { try UserDirectory.list(on: connection) }
}
