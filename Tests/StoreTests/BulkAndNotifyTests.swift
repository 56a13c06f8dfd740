import Foundation
import Store
import Testing
import TestSupport

@Suite("COPY in both directions and LISTEN/NOTIFY")
struct BulkAndNotifyTests {
    @Test("COPY of one million rows in, then out, loses and changes nothing")
    func copyMillionRows() async throws {
        try await TestDatabase.with("copy") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await connection.execute("CREATE TABLE events (seq bigint, label text)")
            let rowCount = 1_000_000
            let copied = try await connection.copyIn("COPY events (seq, label) FROM STDIN") { writer in
                for seq in 0..<rowCount { try writer.write("\(seq)\tévénement \(seq % 97)\n") }
            }
            #expect(copied == rowCount)
            let summary = try await connection.query("SELECT count(*) AS n, sum(seq) AS total FROM events").rows[0]
            #expect(try summary.int("n") == rowCount)
            #expect(try summary.int64("total") == Int64(rowCount) * Int64(rowCount - 1) / 2)

            let seen = Locked<(rows: Int, sum: Int64, bytes: Int)>((0, 0, 0))
            let out = try await connection.copyOut("COPY events (seq, label) TO STDOUT") { line in
                let seq = Int64(String(decoding: line.prefix { $0 != 9 }, as: UTF8.self)) ?? -1
                seen.withLock { $0.rows += 1; $0.sum += seq; $0.bytes += line.count }
            }
            #expect(out == rowCount)
            seen.withLock { value in
                #expect(value.rows == rowCount)
                #expect(value.sum == Int64(rowCount) * Int64(rowCount - 1) / 2)
            }
            await connection.close()
        }
    }

    @Test("A COPY whose producer fails writes nothing, and the connection stays usable")
    func copyAborted() async throws {
        struct ProducerFailed: Error {}
        try await TestDatabase.with("copyabort") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await connection.execute("CREATE TABLE t (v int)")
            await #expect(throws: ProducerFailed.self) {
                try await connection.copyIn("COPY t FROM STDIN") { writer in
                    for v in 0..<100_000 { try writer.write("\(v)\n") }
                    throw ProducerFailed()
                }
            }
            let malformed = await #expect(throws: StoreError.self) {
                try await connection.copyIn("COPY t FROM STDIN") { writer in try writer.write("1\nnot-a-number\n") }
            }
            #expect(malformed?.sqlState == "22P02")
            #expect(try await connection.query("SELECT count(*) AS n FROM t").rows[0].int("n") == 0)
            await connection.close()
        }
    }

    @Test("A NOTIFY from another connection is received with its payload")
    func notify() async throws {
        try await TestDatabase.with("notify") { database in
            let listener = try await Connection.connect(database.connectionString, logger: testLogger)
            let sender = try await Connection.connect(database.connectionString, logger: testLogger)
            try await listener.listen("journal_intake")
            #expect(try await listener.waitForNotifications(timeout: .milliseconds(50)).isEmpty)
            try await sender.notify("journal_intake", payload: "batch-42 ✓")
            var received: [PostgresNotification] = []
            for _ in 0..<50 where received.isEmpty {
                received = try await listener.waitForNotifications(timeout: .milliseconds(200))
            }
            #expect(received.map(\.channel) == ["journal_intake"])
            #expect(received.map(\.payload) == ["batch-42 ✓"])
            #expect(received.first?.senderProcessID == (try await sender.backendProcessID()))
            // A notification sent inside a rolled-back transaction is never delivered.
            await #expect(throws: StoreError.self) {
                try await sender.transaction { connection in
                    try connection.notify("journal_intake", payload: "rolled back")
                    try connection.query("SELECT 1/0")
                }
            }
            #expect(try await listener.waitForNotifications(timeout: .milliseconds(300)).isEmpty)
            await listener.close()
            await sender.close()
        }
    }
}
