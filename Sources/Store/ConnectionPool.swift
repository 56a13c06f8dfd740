public import Logging

/// A small pool of ``Connection``s shared by the tasks of one process.
///
/// A connection is checked for health when it is leased (the server may have closed
/// it while idle) and when it is returned (a transaction left open is rolled back);
/// a broken one is dropped and a new one opened in its place.
///
/// Waiters are served first come, first served: a returned connection is handed to
/// the oldest waiter directly, never left idle for a newcomer to take. (When it was
/// left idle and the waiter only woken, a task arriving meanwhile could take it, and
/// the woken waiter queued again at the back, with no bound on its wait.)
public actor ConnectionPool {
    /// How to reach the server and how many connections to keep.
    public struct Configuration: Sendable {
        /// A libpq connection string; empty uses libpq's environment defaults.
        public var connectionString: String
        /// Shown in `pg_stat_activity`.
        public var applicationName: String
        /// The most connections open at once.
        public var maximumConnections: Int

        /// Creates a configuration.
        public init(connectionString: String, applicationName: String = "osmose", maximumConnections: Int = 8) {
            self.connectionString = connectionString
            self.applicationName = applicationName
            self.maximumConnections = max(1, maximumConnections)
        }
    }

    private let configuration: Configuration
    private let logger: Logger
    private var idle: [Connection] = []
    private var openCount = 0
    /// Each waiter is resumed with a connection handed over, or with nil when a
    /// connection was closed and it may open one in its place.
    private var waiters: [(id: Int, continuation: CheckedContinuation<Connection?, any Error>)] = []
    private var nextWaiterID = 0
    private var closed = false

    /// Creates a pool; connections open on first use.
    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Leases a connection for the duration of `body`.
    public nonisolated func withConnection<Result: Sendable>(_ body: (Connection) async throws -> Result) async throws -> Result {
        let connection = try await lease()
        do {
            let result = try await body(connection)
            await giveBack(connection)
            return result
        } catch {
            await giveBack(connection)
            throw error
        }
    }

    /// Runs `body` in a transaction, retrying the whole transaction when it fails
    /// with a serialization failure or a deadlock (SQLSTATE 40001, 40P01).
    /// - Throws: ``StoreError/Code/retriesExhausted`` after `maximumAttempts` transient failures.
    public nonisolated func transaction<Result: Sendable>(
        isolation: IsolationLevel = .readCommitted, maximumAttempts: Int = 8,
        _ body: @escaping @Sendable (isolated Connection) throws -> Result
    ) async throws -> Result {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await withConnection { connection in
                    try await connection.transaction(isolation: isolation, body)
                }
            } catch let error as StoreError where error.isTransient {
                guard attempt < maximumAttempts else {
                    throw StoreError(.retriesExhausted, "transaction failed \(attempt) times with conflicts", sqlState: error.sqlState)
                }
                let ceiling = min(500, 5 << attempt)
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...ceiling)))
            }
        }
    }

    /// Closes idle connections and refuses new leases. Leased connections close when returned.
    public func shutdown() async {
        closed = true
        for connection in idle { await connection.close() }
        idle.removeAll()
        for waiter in waiters { waiter.continuation.resume(throwing: StoreError(.poolClosed, "the connection pool was shut down")) }
        waiters.removeAll()
    }

    /// The number of connections open now, leased or idle.
    public var openConnections: Int { openCount }

    /// What the pool holds now, for diagnostics: connections open (leased or idle),
    /// idle, and tasks waiting for one.
    public var usage: (open: Int, idle: Int, waiting: Int) { (openCount, idle.count, waiters.count) }

    private func lease() async throws -> Connection {
        var handed: Connection?
        var reserved = false
        while true {
            guard !closed else {
                if let handed {
                    openCount -= 1
                    await handed.close()
                }
                if reserved { openCount -= 1 }
                throw StoreError(.poolClosed, "the connection pool was shut down")
            }
            if let connection = handed ?? (waiters.isEmpty ? idle.popLast() : nil) {
                handed = nil
                if reserved {
                    // A place was kept for this task (a closed connection's), but an idle
                    // connection serves it instead: the place is given up, or the pool would
                    // count a connection that does not exist and, place by place, stop opening.
                    openCount -= 1
                    reserved = false
                }
                if await connection.isUsable() { return connection }
                logger.info("dropping a broken pooled connection")
                await connection.close()
                // Its place stays this task's: a new connection is opened in it.
                reserved = true
                continue
            }
            if !reserved, openCount < configuration.maximumConnections, waiters.isEmpty {
                openCount += 1
                reserved = true
            }
            if reserved {
                reserved = false
                do {
                    return try await Connection.connect(
                        configuration.connectionString, applicationName: configuration.applicationName, logger: logger)
                } catch {
                    openCount -= 1
                    wakeOne()
                    throw error
                }
            }
            // nil: a connection was closed, and its place is reserved for this waiter.
            handed = try await waitForRelease()
            reserved = handed == nil
        }
    }

    private func waitForRelease() async throws -> Connection? {
        let id = nextWaiterID
        nextWaiterID += 1
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Connection?, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else {
                    waiters.append((id, continuation))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
    }

    private func cancelWaiter(_ id: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    /// A connection was closed: the oldest waiter opens one in its place, reserved for it.
    private func wakeOne() {
        guard !waiters.isEmpty, openCount < configuration.maximumConnections else { return }
        openCount += 1
        waiters.removeFirst().continuation.resume(returning: nil)
    }

    private func giveBack(_ connection: Connection) async {
        if !closed, await connection.resetForReuse() {
            if waiters.isEmpty {
                idle.append(connection)
            } else {
                waiters.removeFirst().continuation.resume(returning: connection)
            }
        } else {
            openCount -= 1
            await connection.close()
            wakeOne()
        }
    }
}
