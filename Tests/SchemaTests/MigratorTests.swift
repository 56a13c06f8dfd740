import Foundation
import Schema
import Store
import Testing
import TestSupport

@Suite("Migrations against the real cluster")
struct MigratorTests {
    func migration(_ fileName: String, _ sql: String) throws -> Migration {
        try Migration(fileName: fileName, contents: Array(sql.utf8))
    }

    @Test("The bundled migrations apply once, create the schemas and per-daemon roles, and a second run does nothing")
    func bundled() async throws {
        try await TestDatabase.with("migrate") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            let migrator = Migrator(migrations: try MigrationSet.bundled(), logger: testLogger)
            let first = try await migrator.migrate(on: connection, appliedBy: "test")
            #expect(!first.isEmpty)
            #expect(try await migrator.migrate(on: connection, appliedBy: "test").isEmpty)
            let statuses = try await migrator.status(on: connection)
            #expect(statuses.allSatisfy { $0.state == .applied && $0.appliedAt != nil })

            let schemas = try await connection.query(
                "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[]) ORDER BY nspname", ["{care,dsar,journal,keys,ops}"])
            #expect(try schemas.rows.map { try $0.string("nspname") } == ["care", "dsar", "journal", "keys", "ops"])
            for role in ["osmose_care", "osmose_journald", "osmose_retention", "osmose_backup", "osmose_keyd", "osmose_dsar", "osmose_auditor"] {
                let row = try await connection.query("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = $1", [role]).singleRow()
                #expect(try row?.bool("rolcanlogin") == true, "\(role) exists and can log in")
                #expect(try row?.bool("rolsuper") == false, "\(role) is not a superuser")
            }
            let privileges = try await connection.query("""
                SELECT has_schema_privilege('osmose_care', 'care', 'USAGE') AS care_care,
                       has_schema_privilege('osmose_care', 'dsar', 'USAGE') AS care_dsar,
                       has_schema_privilege('osmose_auditor', 'care', 'USAGE') AS auditor_care,
                       has_schema_privilege('osmose_care', 'public', 'CREATE') AS care_public
                """).rows[0]
            #expect(try privileges.bool("care_care"))
            #expect(try !privileges.bool("care_dsar"))
            #expect(try !privileges.bool("auditor_care"))
            #expect(try !privileges.bool("care_public"))
            await connection.close()
        }
    }

    @Test("Two migrators started at once apply each migration exactly once")
    func concurrent() async throws {
        try await TestDatabase.with("migrateconcurrent") { database in
            let set = try MigrationSet([
                try migration("0001_a.sql", "CREATE TABLE a (v int); SELECT pg_sleep(0.2);"),
                try migration("0002_b.sql", "CREATE TABLE b (v int);"),
            ])
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        let connection = try await Connection.connect(database.connectionString, logger: testLogger)
                        let applied = try await Migrator(migrations: set, logger: testLogger).migrate(on: connection, appliedBy: "test")
                        await connection.close()
                        return applied.count
                    }
                }
                var total = 0
                for try await count in group { total += count }
                #expect(total == 2)
            }
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            #expect(try await connection.query("SELECT count(*) AS n FROM ops.schema_migrations").rows[0].int("n") == 2)
            await connection.close()
        }
    }

    @Test("An applied migration that was edited is refused by name, and nothing more is applied")
    func modified() async throws {
        try await TestDatabase.with("migratemodified") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            let original = try MigrationSet([try migration("0001_first.sql", "CREATE TABLE first (v int);")])
            try await Migrator(migrations: original, logger: testLogger).migrate(on: connection, appliedBy: "test")
            let edited = try MigrationSet([
                try migration("0001_first.sql", "CREATE TABLE first (v bigint);"),
                try migration("0002_second.sql", "CREATE TABLE second (v int);"),
            ])
            let migrator = Migrator(migrations: edited, logger: testLogger)
            let error = await #expect(throws: SchemaError.self) { try await migrator.migrate(on: connection, appliedBy: "test") }
            #expect(error?.code == .migrationModified)
            #expect(error?.description.contains("0001_first.sql") == true)
            #expect(try await migrator.status(on: connection).map(\.state) == [.modified, .pending])
            #expect(try await connection.query("SELECT to_regclass('second') IS NULL AS absent").rows[0].bool("absent"))
            await connection.close()
        }
    }

    @Test("A database migrated by a newer build is refused")
    func unknown() async throws {
        try await TestDatabase.with("migrateunknown") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            let newer = try MigrationSet([try migration("0001_a.sql", "SELECT 1;"), try migration("0002_b.sql", "SELECT 2;")])
            try await Migrator(migrations: newer, logger: testLogger).migrate(on: connection, appliedBy: "test")
            let older = Migrator(migrations: try MigrationSet([try migration("0001_a.sql", "SELECT 1;")]), logger: testLogger)
            let error = await #expect(throws: SchemaError.self) { try await older.migrate(on: connection, appliedBy: "test") }
            #expect(error?.code == .unknownMigration)
            #expect(try await older.status(on: connection).map(\.state) == [.applied, .unknown])
            await connection.close()
        }
    }

    @Test("A failing migration is rolled back whole; earlier ones stay; a dry run changes nothing")
    func failureAndDryRun() async throws {
        try await TestDatabase.with("migratefail") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            let set = try MigrationSet([
                try migration("0001_ok.sql", "CREATE TABLE ok (v int);"),
                try migration("0002_broken.sql", "CREATE TABLE half (v int); SELECT no_such_function();"),
            ])
            let migrator = Migrator(migrations: set, logger: testLogger)
            let wouldApply = try await migrator.migrate(on: connection, appliedBy: "test", dryRun: true)
            #expect(wouldApply.map(\.version) == [1, 2])
            #expect(try await migrator.status(on: connection).map(\.state) == [.pending, .pending])
            let error = await #expect(throws: SchemaError.self) { try await migrator.migrate(on: connection, appliedBy: "test") }
            #expect(error?.code == .migrationFailed)
            #expect(error?.description.contains("0002_broken.sql") == true)
            #expect(try await migrator.status(on: connection).map(\.state) == [.applied, .pending])
            #expect(try await connection.query("SELECT to_regclass('half') IS NULL AS absent").rows[0].bool("absent"))
            await connection.close()
        }
    }

    @Test("A migration that creates a role, run by an owner without CREATEROLE, is rolled back and says how to run it")
    func roleCreationWithoutCreateRole() async throws {
        try await TestDatabase.with("migraterole") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            let owner = "osmose_test_owner_\(UUID().uuidString.prefix(8).lowercased())"
            try await connection.execute("CREATE ROLE \(owner) NOLOGIN NOCREATEROLE; GRANT CREATE ON DATABASE \(database.name) TO \(owner)")
            let set = try MigrationSet([
                try migration("0001_roles.sql", "DO $$ BEGIN CREATE ROLE \(owner)_made NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;")
            ])
            let migrator = Migrator(migrations: set, logger: testLogger)
            do {
                try await connection.execute("SET ROLE \(owner)")
                let error = await #expect(throws: SchemaError.self) { try await migrator.migrate(on: connection, appliedBy: "test") }
                #expect(error?.code == .migrationFailed)
                #expect(error?.description.contains("0001_roles.sql creates a role, and the owner role lacks CREATEROLE") == true, "\(String(describing: error))")
                try await connection.execute("RESET ROLE")
                #expect(try await migrator.status(on: connection).map(\.state) == [.pending])
            } catch {
                try? await connection.execute("RESET ROLE")
                throw error
            }
            try await connection.execute("DROP OWNED BY \(owner); REVOKE ALL ON DATABASE \(database.name) FROM \(owner); DROP ROLE \(owner)")
            await connection.close()
        }
    }

    @Test("Badly named files and duplicate versions are refused")
    func fileNames() throws {
        for name in ["1_short.sql", "0001-dash.sql", "0001_Upper.sql", "0001_x.txt", "0000_zero.sql", "abcd_x.sql"] {
            #expect(throws: SchemaError.self, "\(name)") { try Migration(fileName: name, contents: []) }
        }
        #expect(throws: SchemaError.self) {
            try MigrationSet([try migration("0001_a.sql", ""), try migration("0001_b.sql", "")])
        }
        #expect(try migration("0042_journal_tables.sql", "").fileName == "0042_journal_tables.sql")
    }
}
