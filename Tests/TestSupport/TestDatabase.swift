import Foundation
public import Logging
public import Store
import Schema

/// A database of its own on the cluster that `scripts/test` starts, so that test
/// suites can run in parallel without seeing each other's rows.
public struct TestDatabase: Sendable {
    /// The libpq connection string of the new database.
    public let connectionString: String
    /// Its name.
    public let name: String

    /// The administrator connection string from `scripts/pg env`.
    public static func administratorConnectionString() throws -> String {
        guard let value = ProcessInfo.processInfo.environment["OSMOSE_TEST_DATABASE_URL"], !value.isEmpty else {
            throw TestEnvironmentError(
                "OSMOSE_TEST_DATABASE_URL is not set: run the tests through scripts/test, or eval \"$(scripts/pg env)\" first")
        }
        return value
    }

    /// Creates a fresh, empty database named after `purpose`.
    public static func create(_ purpose: String) async throws -> TestDatabase {
        let admin = try administratorConnectionString()
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let name = "test_\(purpose.lowercased().filter { $0.isLetter || $0.isNumber || $0 == "_" })_\(suffix)"
        let connection = try await Connection.connect(admin, logger: testLogger)
        try await connection.execute("CREATE DATABASE \(try await connection.quoteIdentifier(name))")
        await connection.close()
        return TestDatabase(connectionString: "\(admin) dbname=\(name)", name: name)
    }

    /// Drops the database, terminating any session still connected.
    public func drop() async {
        guard let admin = try? Self.administratorConnectionString(),
            let connection = try? await Connection.connect(admin, logger: testLogger)
        else { return }
        _ = try? await connection.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name])
        if let quoted = try? await connection.quoteIdentifier(name) {
            _ = try? await connection.execute("DROP DATABASE IF EXISTS \(quoted)")
        }
        await connection.close()
    }
}

/// The environment is not set up for the integration tests.
public struct TestEnvironmentError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A logger for tests: critical messages only, unless `OSMOSE_TEST_LOG` names a
/// level (several tests provoke errors on purpose, e.g. the fail-closed ones).
public let testLogger: Logger = {
    var logger = Logger(label: "osmose.tests")
    logger.logLevel = ProcessInfo.processInfo.environment["OSMOSE_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}()

/// Applies the bundled migrations, as `osmosectl db migrate` does.
public func migrate(_ connection: Connection) async throws {
    try await Migrator(migrations: try MigrationSet.bundled(), logger: testLogger).migrate(on: connection, appliedBy: "tests")
}

/// Runs `body` with `resource`, then `release`s it on every path: whether `body`
/// returns or throws (a failed `#require` throws), nothing it holds leaks. The one
/// shape of every scoped test helper (databases, clusters, fixtures, harnesses).
public func withResource<Resource, Result>(
    _ resource: Resource, release: (Resource) async -> Void, _ body: (Resource) async throws -> Result
) async throws -> Result {
    do {
        let result = try await body(resource)
        await release(resource)
        return result
    } catch {
        await release(resource)
        throw error
    }
}

extension TestDatabase {
    /// Creates a database named after `purpose`, runs `body` with it, and drops it on
    /// every path: a failed `#require` (which throws) or any error leaks no database.
    public static func with<Result>(_ purpose: String, _ body: (TestDatabase) async throws -> Result) async throws -> Result {
        try await withResource(try await create(purpose), release: { await $0.drop() }, body)
    }
}
