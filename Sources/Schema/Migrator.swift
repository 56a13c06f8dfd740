public import Foundation
public import Logging
public import Store

/// Where one migration stands in a database.
public struct MigrationStatus: Hashable, Sendable, Codable {
    /// The four states a migration can be in.
    public enum State: String, Sendable, Codable {
        /// Applied, and the file is unchanged since.
        case applied
        /// Not applied yet.
        case pending
        /// Applied, but the file now differs from what was applied.
        case modified
        /// Applied to the database but absent from this build (the database is newer).
        case unknown
    }

    /// The migration's version.
    public let version: Int
    /// Its name.
    public let name: String
    /// Its state.
    public let state: State
    /// When it was applied, if it was.
    public let appliedAt: Date?
}

/// Applies versioned SQL migrations in order, each in its own transaction, and
/// records them in `ops.schema_migrations` with their SHA-256.
///
/// Safe to run twice or from two processes at once (an advisory lock serialises
/// them). Refuses to do anything when an applied migration was edited since, or
/// when the database knows a migration this build does not.
public struct Migrator: Sendable {
    private let migrations: MigrationSet
    private let logger: Logger

    /// The advisory-lock key that serialises migrators on one database ("osmose-m").
    static let lockKey: Int64 = 0x6f73_6d6f_7365_2d6d

    /// Creates a migrator for `migrations`.
    public init(migrations: MigrationSet, logger: Logger) {
        self.migrations = migrations
        self.logger = logger
    }

    /// The state of every migration known to the build or the database.
    public func status(on connection: Connection) async throws -> [MigrationStatus] {
        return Self.compare(migrations, with: try await Self.applied(on: connection))
    }

    /// Applies every pending migration.
    /// - Parameter dryRun: when true, only reports what would be applied.
    /// - Returns: the migrations applied (or that would be).
    /// - Throws: ``SchemaError`` naming the file when a migration was modified, is
    ///   unknown, or fails (that migration is rolled back; earlier ones stay applied).
    @discardableResult
    public func migrate(on connection: Connection, appliedBy: String, dryRun: Bool = false) async throws -> [Migration] {
        try await connection.query("SELECT pg_advisory_lock($1)", [Self.lockKey])
        do {
            try await connection.execute(Self.bootstrap)
            let pending = try await pendingMigrations(on: connection)
            if !dryRun {
                for migration in pending { try await apply(migration, on: connection, appliedBy: appliedBy) }
            }
            try await connection.query("SELECT pg_advisory_unlock($1)", [Self.lockKey])
            return pending
        } catch {
            _ = try? await connection.query("SELECT pg_advisory_unlock($1)", [Self.lockKey])
            throw error
        }
    }

    private func pendingMigrations(on connection: Connection) async throws -> [Migration] {
        let statuses = Self.compare(migrations, with: try await Self.applied(on: connection))
        if let modified = statuses.first(where: { $0.state == .modified }) {
            throw SchemaError(
                .migrationModified,
                "\(String(format: "%04d", modified.version))_\(modified.name).sql was applied and has been edited since; restore the original file and add a new migration instead")
        }
        if let unknown = statuses.first(where: { $0.state == .unknown }) {
            throw SchemaError(
                .unknownMigration,
                "the database has migration \(unknown.version) (\(unknown.name)) that this build does not know: it was migrated by a newer version")
        }
        let pendingVersions = Set(statuses.filter { $0.state == .pending }.map(\.version))
        return migrations.migrations.filter { pendingVersions.contains($0.version) }
    }

    private func apply(_ migration: Migration, on connection: Connection, appliedBy: String) async throws {
        logger.info("applying migration", metadata: ["osmose.schema.migration": "\(migration.fileName)"])
        do {
            try await connection.transaction { connection in
                try connection.execute(migration.sql)
                try connection.query(
                    "INSERT INTO ops.schema_migrations (version, name, checksum, applied_by) VALUES ($1, $2, $3, $4)",
                    [migration.version, migration.name, migration.checksum, appliedBy])
            }
        } catch {
            let storeError = error as? StoreError
            // The owner role has CREATEROLE only while osmose-setup migrates (it is as
            // good as a superuser in PostgreSQL 15): a migration that creates a role,
            // run by the boot-time unit or an upgrade, says how to run it.
            if storeError?.sqlState == "42501", storeError?.serverMessage?.contains("permission denied to create role") == true {
                throw SchemaError(
                    .migrationFailed,
                    "\(migration.fileName) creates a role, and the owner role lacks CREATEROLE; it was rolled back. Run osmose-setup again, as root (it grants CREATEROLE for the migrations only); or as postgres ALTER ROLE osmose_owner CREATEROLE, then as root systemctl restart osmose-migrate.service, then as postgres ALTER ROLE osmose_owner NOCREATEROLE",
                    underlying: storeError)
            }
            throw SchemaError(.migrationFailed, "\(migration.fileName) failed and was rolled back", underlying: storeError)
        }
    }

    struct AppliedMigration {
        let version: Int, name: String, checksum: [UInt8], appliedAt: Date
    }

    private static func applied(on connection: Connection) async throws -> [AppliedMigration] {
        let exists = try await connection.query("SELECT to_regclass('ops.schema_migrations') IS NOT NULL AS present").rows[0]
        guard try exists.bool("present") else { return [] }
        return try await connection.query("SELECT version, name, checksum, applied_at FROM ops.schema_migrations ORDER BY version").rows.map {
            AppliedMigration(version: try $0.int("version"), name: try $0.string("name"), checksum: try $0.bytes("checksum"), appliedAt: try $0.date("applied_at"))
        }
    }

    static func compare(_ migrations: MigrationSet, with applied: [AppliedMigration]) -> [MigrationStatus] {
        let appliedByVersion = Dictionary(uniqueKeysWithValues: applied.map { ($0.version, $0) })
        var statuses = migrations.migrations.map { migration -> MigrationStatus in
            guard let record = appliedByVersion[migration.version] else {
                return MigrationStatus(version: migration.version, name: migration.name, state: .pending, appliedAt: nil)
            }
            let same = record.checksum == migration.checksum && record.name == migration.name
            return MigrationStatus(version: migration.version, name: migration.name, state: same ? .applied : .modified, appliedAt: record.appliedAt)
        }
        let known = Set(migrations.migrations.map(\.version))
        for record in applied where !known.contains(record.version) {
            statuses.append(MigrationStatus(version: record.version, name: record.name, state: .unknown, appliedAt: record.appliedAt))
        }
        return statuses.sorted { $0.version < $1.version }
    }

    /// Creates the bookkeeping table; harmless when it exists.
    static let bootstrap = """
        SET client_min_messages = warning;
        CREATE SCHEMA IF NOT EXISTS ops;
        CREATE TABLE IF NOT EXISTS ops.schema_migrations (
            version integer PRIMARY KEY CHECK (version > 0),
            name text NOT NULL,
            checksum bytea NOT NULL CHECK (length(checksum) = 32),
            applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            applied_by text NOT NULL
        );
        RESET client_min_messages;
        """
}
