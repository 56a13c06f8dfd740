import Foundation
import Store
import Testing
import TestSupport

@Suite("Connection pool")
struct PoolTests {
    @Test("A connection the server dropped is replaced on the next lease")
    func droppedConnectionReplaced() async throws {
        try await TestDatabase.with("pooldrop") { database in
            let pool = ConnectionPool(configuration: .init(connectionString: database.connectionString, maximumConnections: 1), logger: testLogger)
            let firstPID = try await pool.withConnection { try await $0.backendProcessID() }
            let admin = try await Connection.connect(database.connectionString, logger: testLogger)
            try await admin.query("SELECT pg_terminate_backend($1::int)", [firstPID])
            for _ in 0..<100 {
                let alive = try await admin.query("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1::int", [firstPID]).rows[0].int("n")
                if alive == 0 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let (secondPID, answer) = try await pool.withConnection { connection in
                (try await connection.backendProcessID(), try await connection.query("SELECT 41 + 1 AS v").rows[0].int("v"))
            }
            #expect(secondPID != firstPID)
            #expect(answer == 42)
            #expect(await pool.openConnections == 1)
            await admin.close()
            await pool.shutdown()
        }
    }

    @Test("Waiters are served in order: a returned connection goes to the oldest waiter, not to a task that arrives meanwhile")
    func waitersServedInOrder() async throws {
        try await TestDatabase.with("poolfifo") { database in
            let pool = ConnectionPool(configuration: .init(connectionString: database.connectionString, maximumConnections: 1), logger: testLogger)
            let order = ServedOrder()
            let released = Counter()
            // One task holds the only connection until the waiters have queued.
            let holder = Task {
                try await pool.withConnection { _ in
                    while released.value == 0 { try await Task.sleep(for: .milliseconds(5)) }
                }
            }
            try await Task.sleep(for: .milliseconds(100))
            var waiters: [Task<Void, any Error>] = []
            for index in 0..<5 {
                waiters.append(Task { try await pool.withConnection { _ in order.append("waiter \(index)") } })
                try await Task.sleep(for: .milliseconds(50))
            }
            // Newcomers arrive as the connection is returned: each must queue behind the waiters.
            released.increment()
            let newcomers = (0..<20).map { index in Task { try await pool.withConnection { _ in order.append("newcomer \(index)") } } }
            try await holder.value
            for task in waiters + newcomers { try await task.value }
            let served = order.names
            #expect(Array(served.prefix(5)) == (0..<5).map { "waiter \($0)" }, "\(served)")
            #expect(served.count == 25)
            #expect(await pool.openConnections == 1)
            await pool.shutdown()
        }
    }

    @Test("Connections broken while tasks wait: every broken one's place is given back, none counted twice; the pool still opens its full size")
    func brokenConnectionsUnderContention() async throws {
        try await TestDatabase.with("poolbroken") { database in
            var random = TestSeed.generator(test: "PoolTests.brokenConnectionsUnderContention")
            let size = 3
            let pool = ConnectionPool(
                configuration: .init(connectionString: database.connectionString, applicationName: "pool-broken", maximumConnections: size), logger: testLogger)
            let admin = try await Connection.connect(database.connectionString, logger: testLogger)
            let killer = try await Connection.connect(database.connectionString, logger: testLogger)
            for round in 0..<20 {
                // 30 tasks contend for 3 connections; some break theirs (the server ends the
                // backend) before giving it back, so its place passes to a waiter.
                let breaks = (0..<30).map { _ in Int.random(in: 0..<4, using: &random) == 0 }
                let killerPause = Int.random(in: 1...5, using: &random)
                let terminatorRandom = random.split()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    // Meanwhile the server also ends idle connections (one in three ticks, the
                    // oldest idle one), found broken by the next lease.
                    let terminator = Task { [terminatorRandom] in
                        var draws = terminatorRandom
                        while !Task.isCancelled {
                            if Int.random(in: 0..<3, using: &draws) == 0 {
                                try await killer.query(
                                    """
                                    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                    WHERE pid = (SELECT pid FROM pg_stat_activity WHERE application_name = 'pool-broken' AND state = 'idle' ORDER BY backend_start LIMIT 1)
                                    """)
                            }
                            try await Task.sleep(for: .milliseconds(killerPause))
                        }
                    }
                    defer { terminator.cancel() }
                    for breaking in breaks {
                        group.addTask {
                            // A connection the terminator ends mid-lease fails its query: expected here.
                            try await Self.toleratingTerminations { try await pool.withConnection { connection in
                                let pid = try await connection.backendProcessID()
                                _ = try await connection.query("SELECT pg_sleep(0.002)")
                                guard breaking else { return }
                                try await admin.query("SELECT pg_terminate_backend($1::int)", [pid])
                                while try await admin.query("SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1::int", [pid]).rows[0].int("n") > 0 {
                                    try await Task.sleep(for: .milliseconds(2))
                                }
                            } }
                        }
                    }
                    try await group.waitForAll()
                }
                let usage = await pool.usage
                // Nothing is leased now: every connection counted open must be idle.
                #expect(usage.open == usage.idle && usage.waiting == 0, "round \(round) (seed \(random.seed)): \(usage)")
                guard usage.open == usage.idle else { break }
            }
            // The full size still opens: `size` leases at once, each waiting for the others.
            let inside = Counter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<size {
                    group.addTask {
                        try await pool.withConnection { _ in
                            inside.increment()
                            try await waitUntil("\(size) leases held at once", timeout: .seconds(10)) { inside.value == size }
                        }
                    }
                }
                try await group.waitForAll()
            }
            await admin.close()
            await killer.close()
            await pool.shutdown()
        }
    }

    /// Runs `body`; an error saying the server ended the connection (lost, or SQLSTATE
    /// 57P01) is swallowed, any other rethrown.
    static func toleratingTerminations(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as StoreError where error.code == .connectionLost || error.sqlState == "57P01" {
            return
        }
    }

    @Test("Queries from many tasks run side by side and do not block the cooperative pool")
    func concurrency() async throws {
        try await TestDatabase.with("poolconcurrency") { database in
            let pool = ConnectionPool(configuration: .init(connectionString: database.connectionString, maximumConnections: 8), logger: testLogger)
            let heartbeat = Counter()
            let running = Gauge()
            let finished = Counter()
            let beatsWhileBlocked = Counter()
            let queries = 16
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<queries {
                    group.addTask {
                        defer { finished.increment() }
                        _ = try await pool.withConnection { connection in
                            running.enter()
                            defer { running.leave() }
                            return try await connection.query("SELECT pg_sleep(0.5)")
                        }
                    }
                }
                // With every database thread blocked in pg_sleep, plain async work must still run.
                // It beats until the last query has finished (opening eight connections on a
                // loaded machine can take longer than any fixed number of beats), bounded so
                // that a pool that never finishes fails the test instead of hanging it.
                group.addTask {
                    while finished.value < queries, heartbeat.value < 6_000 {
                        try await Task.sleep(for: .milliseconds(10))
                        heartbeat.increment()
                        if running.current > 0 { beatsWhileBlocked.increment() }
                    }
                }
                try await group.waitForAll()
            }
            // Side by side, not one after the other: several sleeps were in flight at once
            // (in series the most would be 1), judged by overlap rather than by a clock
            // that a loaded machine stretches.
            #expect(running.maximum >= 4, "at most \(running.maximum) queries ran at once")
            #expect(finished.value == queries)
            #expect(beatsWhileBlocked.value > 0, "the async work made progress while queries were blocked in the database (\(heartbeat.value) beats)")
            #expect(await pool.openConnections <= 8)
            await pool.shutdown()
        }
    }

    @Test("Conflicting serializable transactions are retried until each one commits")
    func serializationRetry() async throws {
        try await TestDatabase.with("poolretry") { database in
            let pool = ConnectionPool(configuration: .init(connectionString: database.connectionString, maximumConnections: 6), logger: testLogger)
            try await pool.withConnection { try await $0.execute("CREATE TABLE counter (n int); INSERT INTO counter VALUES (0)") }
            let attempts = Counter()
            let workers = 6, increments = 10
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<workers {
                    group.addTask {
                        for _ in 0..<increments {
                            try await pool.transaction(isolation: .serializable, maximumAttempts: 50) { connection in
                                attempts.increment()
                                let current = try connection.query("SELECT n FROM counter").rows[0].int("n")
                                try connection.query("UPDATE counter SET n = $1", [current + 1])
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let final = try await pool.withConnection { try await $0.query("SELECT n FROM counter").rows[0].int("n") }
            #expect(final == workers * increments, "no lost update")
            #expect(attempts.value >= workers * increments)
            await pool.shutdown()
        }
    }

    @Test("A lease waits for a free connection, and a returned transaction is rolled back")
    func waitingAndReset() async throws {
        try await TestDatabase.with("poolwait") { database in
            let pool = ConnectionPool(configuration: .init(connectionString: database.connectionString, maximumConnections: 1), logger: testLogger)
            try await pool.withConnection { try await $0.execute("CREATE TABLE t (v int)") }
            // Leave a transaction open: the pool must roll it back before reuse.
            try await pool.withConnection { try await $0.execute("BEGIN; INSERT INTO t VALUES (1)") }
            async let slow: Void = pool.withConnection { _ = try await $0.query("SELECT pg_sleep(0.3)") }
            try await Task.sleep(for: .milliseconds(50))
            let count = try await pool.withConnection { try await $0.query("SELECT count(*) AS n FROM t").rows[0].int("n") }
            try await slow
            #expect(count == 0)
            await pool.shutdown()
            let closed = await #expect(throws: StoreError.self) { try await pool.withConnection { _ in 1 } }
            #expect(closed?.code == .poolClosed)
        }
    }
}

/// A counter shared between tasks.
/// How many are inside now, and the most at once.
final class Gauge: Sendable {
    private let state = Locked((current: 0, maximum: 0))
    func enter() { state.withLock { $0.current += 1; $0.maximum = max($0.maximum, $0.current) } }
    func leave() { state.withLock { $0.current -= 1 } }
    var current: Int { state.withLock { $0.current } }
    var maximum: Int { state.withLock { $0.maximum } }
}

/// Who was served, in order.
final class ServedOrder: Sendable {
    private let served = Locked<[String]>([])
    func append(_ name: String) { served.withLock { $0.append(name) } }
    var names: [String] { served.withLock { $0 } }
}

final class Counter: Sendable {
    private let count = Locked(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
