import Age
import Archive
@testable import Backup
import Foundation
import Glibc
import Journal
import Store
import Testing
import TestSupport

/// The drill's own decisions; the whole drill (restore, start, count, verify, stop)
/// runs end to end in `BackupRestoreTests`.
@Suite("Restore drill")
struct RestoreDrillTests {
    func directory(_ label: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-\(label)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A fake `<root>/<version>/bin/initdb`, executable or not.
    func install(_ version: String, under root: String, executable: Bool = true) throws {
        try FileManager.default.createDirectory(atPath: "\(root)/\(version)/bin", withIntermediateDirectories: true)
        try "#!/bin/sh\n".write(toFile: "\(root)/\(version)/bin/initdb", atomically: true, encoding: .utf8)
        chmod("\(root)/\(version)/bin/initdb", executable ? 0o755 : 0o644)
    }

    @Test("The server programs are the newest version's with an executable initdb, versions compared as numbers")
    func locatesTheNewestVersion() throws {
        let root = try directory("pgroot")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try install("9.6", under: root)
        #expect(try PostgresServerPrograms.locate(under: root).directory == "\(root)/9.6/bin")
        try install("15", under: root)
        #expect(try PostgresServerPrograms.locate(under: root).directory == "\(root)/15/bin", "15 is newer than 9.6")
        try install("16", under: root, executable: false)
        try FileManager.default.createDirectory(atPath: "\(root)/17/bin", withIntermediateDirectories: true)
        let located = try PostgresServerPrograms.locate(under: root)
        #expect(located.directory == "\(root)/15/bin", "16 has no executable initdb, 17 none at all")
        #expect(located.pgCtl == "\(root)/15/bin/pg_ctl")
    }

    @Test("Without server programs the drill refuses, naming where it looked")
    func refusesWithoutServerPrograms() throws {
        let root = try directory("pgempty")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try install("15", under: root, executable: false)
        for searched in [root, root + "/absent"] {
            let error = try #require(throws: RestoreDrillError.self) { try PostgresServerPrograms.locate(under: searched) }
            #expect(error.code == .serverProgramsNotFound)
            #expect(error.description.contains("\(searched)/*/bin/initdb"), "\(error)")
        }
    }

    @Test("A restored directory without the server's configuration files names each one missing (a Debian cluster keeps them in /etc)")
    func missingConfiguration() throws {
        let data = try directory("restored")
        defer { try? FileManager.default.removeItem(atPath: data) }
        #expect(BackupRestore.missingConfiguration(in: data) == ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"])
        try "# restored\n".write(toFile: "\(data)/pg_hba.conf", atomically: true, encoding: .utf8)
        #expect(BackupRestore.missingConfiguration(in: data) == ["postgresql.conf", "pg_ident.conf"])
        for name in ["postgresql.conf", "pg_ident.conf"] { try "".write(toFile: "\(data)/\(name)", atomically: true, encoding: .utf8) }
        #expect(BackupRestore.missingConfiguration(in: data).isEmpty)
    }

    @Test("After a restore: pg_ctl when the configuration is there or only pg_ident.conf is missing; pg_createcluster, never a whole copy, otherwise")
    func nextSteps() {
        func steps(_ missing: [String]) -> String {
            RestoreReport(backup: "b", members: 1, walFrom: "w", walTo: "w", configurationMissing: missing).nextSteps(target: "/srv/r").joined(separator: "\n")
        }
        let complete = steps([])
        #expect(complete == "next: chown -R postgres:postgres /srv/r && pg_ctl -D /srv/r start (as postgres)")
        let identOnly = steps(["pg_ident.conf"])
        #expect(identOnly.contains("holds no pg_ident.conf:") && identOnly.contains("user name map") && identOnly.contains("pg_ctl -D /srv/r start"), "\(identOnly)")
        for missing in [["postgresql.conf", "pg_hba.conf", "pg_ident.conf"], ["pg_hba.conf"]] {
            let text = steps(missing)
            #expect(text.contains("holds no \(missing.joined(separator: ", ")):") && text.contains("Never copy that postgresql.conf whole"), "\(text)")
            #expect(text.contains("pg_createcluster <version> restored -d /srv/r") && !text.contains("pg_ctl -D"), "\(text)")
        }
    }

    @Test("The database checked is the one the connection string names, else osmose")
    func databaseName() {
        #expect(RestoreDrill.databaseName(inConnectionString: "host=/run/postgresql user=postgres dbname=care_prod") == "care_prod")
        #expect(RestoreDrill.databaseName(inConnectionString: "host=/run/postgresql user=postgres") == "osmose")
    }

    @Test("A drill whose restore fails throws and removes its directory, unless asked to keep it")
    func cleansUpAfterAFailedRestore() async throws {
        let store = try directory("drillstore")
        let work = try directory("drillwork")
        defer {
            try? FileManager.default.removeItem(atPath: store)
            try? FileManager.default.removeItem(atPath: work)
        }
        let restorer = BackupRestore(store: store, identities: [try AgeIdentity.generate()], trust: BackupTrust(keys: []))
        let programs = PostgresServerPrograms(directory: "/nonexistent")
        for keep in [true, false] {
            let drill = RestoreDrill(
                restorer: restorer, restoreCommand: "false", databaseName: "osmose", programs: programs, directory: "\(work)/drill", keep: keep,
                journalVerifierKeys: { [] }, logger: testLogger)
            await #expect(throws: ArchiveError.self) { try await drill.run() }
            #expect(FileManager.default.fileExists(atPath: "\(work)/drill/socket") == keep)
        }
    }

    /// A drill over an empty store, to check databases with.
    func drill(keys: @escaping @Sendable () throws -> [NoteVerifierKey]) throws -> RestoreDrill {
        RestoreDrill(
            restorer: BackupRestore(store: "/nonexistent", identities: [try AgeIdentity.generate()], trust: BackupTrust(keys: [])), restoreCommand: "false", databaseName: "osmose",
            programs: PostgresServerPrograms(directory: "/nonexistent"), journalVerifierKeys: keys, logger: testLogger)
    }

    @Test("Checking a restored database counts every table and verifies the journal once it has a checkpoint, with the keys given")
    func checksTheRestoredDatabase() async throws {
        try await TestDatabase.with("drillcheck") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await migrate(connection)
            try await connection.execute("CREATE TABLE public.drill (id int); INSERT INTO public.drill SELECT generate_series(1, 3)")
            let signer = try NoteSignerKey.generate(name: "journal.drill.example")
            let vkey = signer.verifierKey
            let unsigned = try await drill(keys: { throw JournalError(.signingKey, "no keys") }).check(restoredDatabase: connection)
            #expect(unsigned.problems.isEmpty, "no checkpoint yet: nothing to verify, no key asked for")
            #expect(unsigned.tables.first { $0.table == "public.drill" }?.rows == 3)
            #expect(unsigned.tables.contains { $0.table == "journal.checkpoints" && $0.rows == 0 })

            let events = (0..<5).map { AccessEvent(source: "osmose-care", requestID: "drill-\($0)", action: .read, objectType: "patient", result: .success) }
            try await connection.transaction { try $0.record(events) }
            let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
            try await connection.perform { try JournalDatabase.ensurePartition(on: $0, containing: now) }
            let state = try await connection.perform { try JournalDatabase.loadState(on: $0) }
            let appended = try await connection.transaction { try JournalDatabase.appendBatch(on: $0, state: state, limit: 100, now: now) }
            _ = try await connection.transaction { try JournalDatabase.issueCheckpoint(on: $0, state: appended.state, signers: [signer], now: now) }

            let verified = try await drill(keys: { [vkey] }).check(restoredDatabase: connection)
            #expect(verified.problems.isEmpty, "\(verified.problems)")
            #expect(verified.tables.contains { $0.table == "journal.checkpoints" && $0.rows == 1 })
            let otherKey = try NoteSignerKey.generate(name: "journal.drill.example").verifierKey
            let wrongKey = try await drill(keys: { [otherKey] }).check(restoredDatabase: connection)
            #expect(wrongKey.problems.count == 1 && wrongKey.problems[0].hasPrefix("the restored journal does not verify"), "\(wrongKey.problems)")
            let noKey = try await drill(keys: { throw JournalError(.signingKey, "no verifier key") }).check(restoredDatabase: connection)
            #expect(noKey.problems == ["cannot verify the restored journal: journal.signing_key: no verifier key"])
            await connection.close()
        }
    }
}
