import Foundation
import Store
import Testing
import TestSupport

@Suite("Statements against the real cluster")
struct StatementTests {
    @Test("Parameters with quotes, Unicode and 1 MB of text round-trip unchanged")
    func roundTrip() async throws {
        try await TestDatabase.with("roundtrip") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await connection.execute("CREATE TABLE t (id int PRIMARY KEY, body text, raw bytea, at timestamptz, flag boolean, big bigint)")
            let megabyte = String(repeating: "Ωx'\"\\;", count: 1_000_000 / 6)
            let texts = [
                "O'Brien; DROP TABLE t; --", "Ségolène d'Aÿ-Champagne", "患者 名前", "emoji 🚑🧠", "back\\slash \"quoted\"",
                "$1 $2 %s {}", "line\nbreak\ttab", "", megabyte,
            ]
            let allBytes = (0...255).map { UInt8($0) }
            let when = Date(timeIntervalSince1970: 1_795_000_000.123456)
            for (index, text) in texts.enumerated() {
                try await connection.query(
                    "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6)", [index, text, allBytes, when, index % 2 == 0, Int64.max - Int64(index)])
            }
            let result = try await connection.query("SELECT * FROM t ORDER BY id")
            #expect(result.rows.count == texts.count)
            for (index, row) in result.rows.enumerated() {
                #expect(try row.string("body") == texts[index])
                #expect(try row.bytes("raw") == allBytes)
                #expect(abs(try row.date("at").timeIntervalSince(when)) < 0.000_001)
                #expect(try row.bool("flag") == (index % 2 == 0))
                #expect(try row.int64("big") == Int64.max - Int64(index))
            }
            let nulls = try await connection.query("SELECT $1::text AS a, $2::bytea AS b", [String?.none, [UInt8]?.none])
            #expect(try nulls.rows[0].isNull("a"))
            #expect(try nulls.rows[0].optionalBytes("b") == nil)
            await connection.close()
        }
    }

    @Test("A string holding NUL is refused before it reaches the server")
    func nulRefused() async throws {
        try await TestDatabase.with("nul") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            let error = await #expect(throws: StoreError.self) { try await connection.query("SELECT $1::text", ["a\u{0}b"]) }
            #expect(error?.code == .invalidArgument)
            #expect(try await connection.query("SELECT 1 AS one").rows[0].int("one") == 1)
            await connection.close()
        }
    }

    @Test("A unique violation surfaces as SQLSTATE 23505 naming the constraint, not the value")
    func uniqueViolation() async throws {
        try await TestDatabase.with("unique") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await connection.execute("CREATE TABLE patients (ins text CONSTRAINT patients_ins_unique UNIQUE)")
            try await connection.query("INSERT INTO patients VALUES ($1)", ["1840312345678"])
            let error = await #expect(throws: StoreError.self) {
                try await connection.query("INSERT INTO patients VALUES ($1)", ["1840312345678"])
            }
            #expect(error?.sqlState == "23505")
            #expect(error?.isUniqueViolation == true)
            #expect(error?.objects["constraint"] == "patients_ins_unique")
            #expect(error.map { String(describing: $0).contains("1840312345678") } == false)
            #expect(error.map { String(reflecting: $0).contains("1840312345678") } == true, "the debug form keeps the server's detail")
            // The connection stays usable after an error.
            #expect(try await connection.query("SELECT count(*) AS n FROM patients").rows[0].int("n") == 1)
            await connection.close()
        }
    }

    @Test("Connection failures are reported with their own codes")
    func connectionFailures() async throws {
        let malformed = await #expect(throws: StoreError.self) {
            try await Connection.connect("host=/nowhere port='unterminated", logger: testLogger)
        }
        #expect(malformed?.code == .invalidArgument)
        let unreachable = await #expect(throws: StoreError.self) {
            try await Connection.connect("host=/nonexistent-socket-dir port=1 connect_timeout=2", logger: testLogger)
        }
        #expect(unreachable?.code == .connectionFailed)
        let admin = try TestDatabase.administratorConnectionString()
        let missing = await #expect(throws: StoreError.self) {
            try await Connection.connect("\(admin) dbname=no_such_database_here", logger: testLogger)
        }
        #expect(missing?.code == .connectionFailed)
    }

    @Test("A transaction commits when its body returns and rolls back when it throws")
    func transactions() async throws {
        struct Abort: Error {}
        try await TestDatabase.with("transactions") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await connection.execute("CREATE TABLE t (v int)")
            try await connection.transaction { connection in _ = try connection.query("INSERT INTO t VALUES (1)") }
            await #expect(throws: Abort.self) {
                try await connection.transaction { connection in
                    try connection.query("INSERT INTO t VALUES (2)")
                    throw Abort()
                }
            }
            await #expect(throws: StoreError.self) {
                try await connection.transaction { connection in
                    try connection.query("INSERT INTO t VALUES (3)")
                    _ = try? connection.query("SELECT 1/0")
                }
            }
            let values = try await connection.query("SELECT v FROM t ORDER BY v").rows.map { try $0.int("v") }
            #expect(values == [1])
            #expect(await connection.isUsable())
            await connection.close()
        }
    }
}
