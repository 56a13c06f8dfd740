import Foundation
public import Store

/// The journal as stored in PostgreSQL, for `verify`. Use inside one REPEATABLE READ
/// transaction on the connection's thread, so that every read sees the same snapshot
/// while osmose-journald keeps appending. Entries and tiles stream through binary
/// COPY, without holding the journal in memory.
public final class DatabaseSnapshot: JournalSnapshot {
    private let connection: Connection

    /// A snapshot over `connection`, which must be the caller's isolated connection.
    public init(connection: isolated Connection) {
        self.connection = connection
    }

    public func head() throws -> (size: UInt64, chainHash: [UInt8]) {
        try connection.assumeIsolated { connection in
            guard let row = try connection.query("SELECT tree_size, chain_hash FROM journal.head").singleRow() else {
                throw JournalError(.inconsistentState, "journal.head has no row")
            }
            return (UInt64(try row.int64("tree_size")), try row.bytes("chain_hash"))
        }
    }

    public func forEachCheckpoint(from firstID: Int64, _ body: (CheckpointRecord) throws -> Void) throws {
        var after = firstID - 1
        while true {
            let batch = try connection.assumeIsolated { connection in
                try JournalDatabase.checkpoints(ids: (after + 1)...Int64.max, limit: 10_000, on: connection)
            }
            for record in batch { try body(record) }
            guard let last = batch.last, batch.count == 10_000 else { return }
            after = last.id
        }
    }

    public func forEachEntry(from first: UInt64, _ body: (EntryRow) throws -> Void) throws {
        try stream(
            """
            COPY (SELECT seq, sequenced_at, canonical, leaf_hash, chain_hash, occurred_at, actor_user_id, actor_team, action, patient_id,
                purpose, result FROM journal.entries WHERE seq >= \(first) ORDER BY seq) TO STDOUT (FORMAT binary)
            """
        ) { row in
            let offset = BinaryCopyDecoder.postgresEpochOffset
            try body(
                EntryRow(
                    sequence: UInt64(bitPattern: try row.int64(0)), sequencedAt: try row.int64(1) + offset, canonical: row.bytes(2) ?? [],
                    leafHash: row.bytes(3) ?? [], chainHash: row.bytes(4) ?? [], occurredAt: try row.int64(5) + offset,
                    actorUserID: try row.uuid(6), actorTeam: try row.text(7), action: try row.text(8) ?? "", patientID: try row.uuid(9),
                    purpose: try row.text(10), result: try row.text(11) ?? ""))
        }
    }

    public func forEachTile(_ body: (HashTile) throws -> Void) throws {
        try stream("COPY (SELECT level::int8, tile_index, hashes FROM journal.tiles ORDER BY level, tile_index) TO STDOUT (FORMAT binary)") { row in
            try body(HashTile(level: Int(try row.int64(0)), index: UInt64(bitPattern: try row.int64(1)), hashes: row.bytes(2) ?? []))
        }
    }

    public func edge(size: UInt64) throws -> TreeEdge {
        try connection.assumeIsolated { connection in try DatabaseTreeReader(connection: connection).edge(size: size) }
    }

    /// Runs a binary COPY and hands each decoded row to `body`, in order.
    ///
    /// The connection's thread only receives rows from libpq; a second thread decodes
    /// them and runs `body`, so that receiving (and PostgreSQL producing) overlaps
    /// with verifying. This call returns only after that thread has finished, so
    /// `body` never runs concurrently with its caller.
    private func stream(_ sql: String, _ body: (BinaryCopyDecoder.Row) throws -> Void) throws {
        try withoutActuallyEscaping(body) { body in
            let sink = RowCollector(body)
            let pipe = ChunkPipe()
            let finished = DispatchSemaphore(value: 0)
            let worker = Thread {
                while let batch = pipe.pop() {
                    guard pipe.failure == nil else { continue }
                    do {
                        for chunk in batch { try sink.feed(chunk) }
                    } catch {
                        pipe.fail(error)
                    }
                }
                finished.signal()
            }
            worker.name = "journal-verify"
            worker.start()
            var copyError: (any Error)?
            do {
                try connection.assumeIsolated { connection in
                    _ = try connection.copyOut(sql) { chunk in
                        if pipe.failure != nil { return }
                        pipe.push(chunk)
                    }
                }
            } catch {
                copyError = error
            }
            pipe.close()
            finished.wait()
            sink.release()
            if let failure = pipe.failure { throw failure }
            if let copyError { throw copyError }
        }
    }
}

/// Hands COPY chunks from the connection's thread to the verifying thread, in
/// batches, with a bounded backlog.
private final class ChunkPipe: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`, except `current`,
    // which only the producing thread touches.
    private let condition = NSCondition()
    private var batches: [[[UInt8]]] = []
    private var current: [[UInt8]] = []
    private var closed = false
    private var error: (any Error)?

    var failure: (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        return error
    }

    func fail(_ error: any Error) {
        condition.lock()
        if self.error == nil { self.error = error }
        condition.unlock()
    }

    func push(_ chunk: [UInt8]) {
        current.append(chunk)
        if current.count >= 512 { flush() }
    }

    private func flush() {
        guard !current.isEmpty else { return }
        condition.lock()
        while batches.count >= 32 && error == nil { condition.wait() }
        batches.append(current)
        condition.broadcast()
        condition.unlock()
        current = []
    }

    func close() {
        flush()
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    func pop() -> [[UInt8]]? {
        condition.lock()
        defer { condition.unlock() }
        while batches.isEmpty && !closed { condition.wait() }
        guard !batches.isEmpty else { return nil }
        condition.broadcast()
        return batches.removeFirst()
    }
}
