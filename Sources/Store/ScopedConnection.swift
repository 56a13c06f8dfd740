public import Logging

extension Connection {
    /// Opens a connection, runs `body` with it, and closes it whether `body` returns
    /// or throws: the one way a short-lived connection is used, so that an error on
    /// any path leaks no session.
    ///
    /// - Parameters:
    ///   - connectionString: a libpq connection string (see ``connect(_:applicationName:logger:)``).
    ///   - applicationName: shown in `pg_stat_activity` unless the string sets one.
    ///   - logger: where the connection logs.
    ///   - body: the work; it receives the open connection.
    /// - Returns: what `body` returns.
    /// - Throws: ``StoreError`` when the connection cannot be opened, or what `body` throws.
    public static func withConnection<Result>(
        _ connectionString: String, applicationName: String = "osmose", logger: Logger,
        _ body: (Connection) async throws -> Result
    ) async throws -> Result {
        let connection = try await connect(connectionString, applicationName: applicationName, logger: logger)
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }
}
