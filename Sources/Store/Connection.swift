import CLibpq
import Foundation
public import Logging

/// A notification received on a channel the connection listens to.
public struct PostgresNotification: Hashable, Sendable {
    /// The channel name.
    public let channel: String
    /// The payload given to `NOTIFY` or `pg_notify`.
    public let payload: String
    /// The server process that sent it.
    public let senderProcessID: Int32
}

/// Transaction isolation levels.
public enum IsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

/// The single owner of a libpq `PGconn`, which it closes on release.
///
/// It also keeps alive the ``NoticeSink`` whose address libpq holds as the notice
/// receiver's context: the sink then outlives every call libpq can make to it.
/// Only the ``Connection`` actor holds one (and, for the time of a call, the
/// actor's methods), so the `PGconn` is used on the actor's thread alone.
final class ConnectionHandle {
    let pointer: OpaquePointer
    private let noticeSink: NoticeSink?
    init(_ pointer: OpaquePointer, noticeSink: NoticeSink? = nil) {
        self.pointer = pointer
        self.noticeSink = noticeSink
    }
    deinit { PQfinish(pointer) }
}

/// Receives server notices (e.g. "relation already exists, skipping") so they go to
/// the log instead of stderr, and remembers a FATAL message received while idle
/// (the server is closing this session: administrator command, shutdown).
final class NoticeSink: Sendable {
    let logger: Logger
    private let fatalReceived = Locked(false)
    init(logger: Logger) { self.logger = logger }

    var sessionTerminated: Bool { fatalReceived.withLock { $0 } }

    func receive(severity: String, sqlState: String, message: String) {
        if severity == "FATAL" || severity == "PANIC" {
            fatalReceived.withLock { $0 = true }
            logger.warning("the server is closing this connection", metadata: ["osmose.store.sqlstate": "\(sqlState)"])
        } else {
            logger.debug("postgres notice", metadata: ["osmose.store.notice": "\(message)"])
        }
    }
}

/// One connection to PostgreSQL through libpq.
///
/// The actor runs on a thread of its own (see ``DedicatedThreadExecutor``): libpq
/// blocks while it waits for the server, and that wait must not hold a thread of
/// Swift's cooperative pool. Parameters always travel separately from the SQL text.
public actor Connection {
    private nonisolated let executor: DedicatedThreadExecutor
    /// Runs this actor's work on its dedicated thread.
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private var handle: ConnectionHandle?
    private let logger: Logger
    /// Statements prepared on this session, by SQL text: parsed and planned once.
    private var preparedStatements: [String: String] = [:]
    private static let preparedStatementLimit = 512
    private let noticeSink: NoticeSink
    /// How many requests this connection has sent and waited for (statements,
    /// preparations, COPY): tests count them to bound an operation's round trips.
    public private(set) var roundTrips = 0

    private init(logger: Logger) {
        self.logger = logger
        self.noticeSink = NoticeSink(logger: logger)
        self.executor = DedicatedThreadExecutor(name: "osmose-postgres")
    }

    deinit { executor.shutdown() }

    /// Opens a connection.
    ///
    /// - Parameters:
    ///   - connectionString: a libpq connection string (`key=value …` or a
    ///     `postgresql://` URI). Empty means libpq's environment defaults (`PGHOST`,
    ///     `PGSERVICE`, `.pgpass`…), exactly as `psql` would use them.
    ///   - applicationName: shown in `pg_stat_activity` unless the string sets one.
    /// - Throws: ``StoreError/Code/invalidArgument`` for a malformed string,
    ///   ``StoreError/Code/connectionFailed`` when the server cannot be reached or refuses.
    public static func connect(_ connectionString: String, applicationName: String = "osmose", logger: Logger) async throws -> Connection {
        let connection = Connection(logger: logger)
        try await connection.open(connectionString, applicationName: applicationName)
        return connection
    }

    private func open(_ connectionString: String, applicationName: String) throws {
        // libpq allocates the parse error message (freed here with PQfreemem) and the
        // option list (freed with PQconninfoFree); neither is used afterwards.
        var parseError: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(connectionString, &parseError) else {
            let reason = parseError.map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "unknown"
            PQfreemem(parseError)
            throw StoreError(.invalidArgument, "malformed connection string: \(reason)")
        }
        PQconninfoFree(options)
        // The keyword and value strings are strdup'ed copies, freed by the defer after
        // PQconnectdbParams returns (libpq copies what it keeps); the two arrays of
        // pointers end with the NULL that libpq reads as their end.
        let keywordNames: [String] = ["dbname", "fallback_application_name"]
        let keywords: [UnsafeMutablePointer<CChar>?] = keywordNames.map { strdup($0) }
        let valueStrings: [String] = [connectionString, applicationName]
        let values: [UnsafeMutablePointer<CChar>?] = valueStrings.map { strdup($0) }
        defer { (keywords + values).forEach { free($0) } }
        let raw: [UnsafePointer<CChar>?] = (keywords + [nil]).map { $0.map { UnsafePointer($0) } }
        let rawValues: [UnsafePointer<CChar>?] = (values + [nil]).map { $0.map { UnsafePointer($0) } }
        guard let pointer = PQconnectdbParams(raw, rawValues, 1) else {
            throw StoreError(.connectionFailed, "libpq could not allocate a connection")
        }
        let owned = ConnectionHandle(pointer, noticeSink: noticeSink)
        guard PQstatus(pointer) == CONNECTION_OK else {
            throw StoreError(.connectionFailed, "cannot connect: \(Self.lastError(pointer))")
        }
        // The context is the sink unretained: `owned` retains it for as long as the PGconn
        // exists, and libpq calls the receiver only on this actor's thread, during a call.
        PQsetNoticeReceiver(pointer, { context, result in
            guard let context, let result else { return }
            func field(_ code: Character) -> String {
                PQresultErrorField(result, Int32(code.asciiValue!)).map { String(cString: $0) } ?? ""
            }
            Unmanaged<NoticeSink>.fromOpaque(context).takeUnretainedValue()
                .receive(severity: field("V"), sqlState: field("C"), message: field("M"))
        }, Unmanaged.passUnretained(noticeSink).toOpaque())
        handle = owned
        try execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET client_encoding = 'UTF8'; SET bytea_output = 'hex'")
    }

    /// Sends `sql`, a COPY statement, and checks that the server entered the COPY state
    /// `expected` (`PGRES_COPY_IN` or `PGRES_COPY_OUT`); otherwise throws the server's
    /// error. The result that announces the COPY carries nothing else and is freed here.
    private func startCopy(_ sql: String, expecting expected: ExecStatusType, on pointer: OpaquePointer) throws {
        roundTrips += 1
        let started = PQexec(pointer, sql)
        defer { PQclear(started) }
        guard let started, PQresultStatus(started) == expected else {
            if let started { throw Self.error(from: started, connection: pointer) }
            throw StoreError(.copyFailed, "COPY did not start: \(Self.lastError(pointer))")
        }
    }

    private static func lastError(_ pointer: OpaquePointer) -> String {
        String(cString: PQerrorMessage(pointer)).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "; ")
    }

    /// The open connection's handle. A method keeps it until it returns (so that a
    /// `close()` from a callback it runs cannot free the `PGconn` under it) and uses its
    /// pointer only meanwhile.
    private func live() throws -> ConnectionHandle {
        guard let handle else { throw StoreError(.connectionLost, "the connection is closed") }
        return handle
    }

    /// Closes the connection. Later calls fail with ``StoreError/Code/connectionLost``.
    public func close() {
        handle = nil
        preparedStatements.removeAll()
    }

    /// Runs `body` on the connection's thread without opening a transaction (each
    /// statement commits by itself), for work such as a journaled read whose
    /// statements need no atomicity between them.
    public func perform<Result: Sendable>(_ body: @Sendable (isolated Connection) throws -> Result) throws -> Result {
        try body(self)
    }

    /// The server process id serving this connection (as in `pg_stat_activity.pid`).
    public func backendProcessID() throws -> Int32 {
        let owner = try live()
        return PQbackendPID(owner.pointer)
    }

    /// The role this connection logged in as (libpq's PQuser).
    public func userName() throws -> String {
        let owner = try live()
        return PQuser(owner.pointer).map { String(cString: $0) } ?? ""
    }

    /// True when the connection is open, idle outside any transaction, and the server
    /// has not closed it. Reads whatever the server sent meanwhile, without blocking.
    public func isUsable() -> Bool {
        guard let pointer = handle?.pointer, PQstatus(pointer) == CONNECTION_OK else { return false }
        // A backend that was terminated leaves its FATAL message then end-of-file on
        // the socket; libpq sees the end only on a second read, so read until the
        // socket has nothing more, without blocking.
        for _ in 0..<4 {
            var descriptor = pollfd(fd: PQsocket(pointer), events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 0) > 0 else { break }
            guard PQconsumeInput(pointer) == 1 else { return false }
            _ = PQisBusy(pointer)
        }
        return !noticeSink.sessionTerminated && PQstatus(pointer) == CONNECTION_OK && PQtransactionStatus(pointer) == PQTRANS_IDLE
    }

    /// Rolls back any transaction left open, then reports ``isUsable()``.
    func resetForReuse() -> Bool {
        guard let pointer = handle?.pointer, PQstatus(pointer) == CONNECTION_OK else { return false }
        let status = PQtransactionStatus(pointer)
        if status == PQTRANS_INTRANS || status == PQTRANS_INERROR {
            logger.warning("a transaction was left open; rolling it back")
            _ = try? execute("ROLLBACK")
        }
        return isUsable()
    }

    // MARK: Statements

    /// Runs one statement with positional parameters (`$1`, `$2`…) and returns its rows.
    ///
    /// Values never enter the SQL text. Text is sent as text and cast by the server;
    /// `[UInt8]` is sent in binary for `bytea`.
    /// - Throws: ``StoreError/Code/queryFailed`` with the SQLSTATE when the server
    ///   rejects it; ``StoreError/Code/invalidArgument`` for a string holding NUL;
    ///   ``StoreError/Code/connectionLost`` when the connection broke.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresEncodable] = []) throws -> QueryResult {
        let owner = try live()
        defer { withExtendedLifetime(owner) {} }
        let pointer = owner.pointer
        // Each value is copied into a malloc'ed block that `storage` owns until this
        // method returns: libpq reads `values` (pointers into those blocks), `lengths`
        // and `formats` only during PQexecParams/PQexecPrepared, which all return before
        // the defer frees the blocks. Text is NUL-terminated (strdup, after refusing an
        // embedded NUL); binary values are read for exactly their length.
        var storage: [UnsafeMutableRawPointer?] = []
        defer { storage.forEach { free($0) } }
        var lengths: [Int32] = []
        var formats: [Int32] = []
        for (position, parameter) in parameters.enumerated() {
            switch parameter.postgresValue {
            case .text(let text):
                guard !text.utf8.contains(0) else {
                    throw StoreError(.invalidArgument, "parameter $\(position + 1) contains a NUL character, which PostgreSQL text cannot hold")
                }
                storage.append(UnsafeMutableRawPointer(strdup(text)))
                lengths.append(0)
                formats.append(0)
            case .bytes(let bytes):
                let buffer = malloc(max(bytes.count, 1))
                bytes.withUnsafeBytes { if let base = $0.baseAddress { buffer?.copyMemory(from: base, byteCount: bytes.count) } }
                storage.append(buffer)
                lengths.append(Int32(bytes.count))
                formats.append(1)
            case .null:
                storage.append(nil)
                lengths.append(0)
                formats.append(0)
            }
        }
        let values = storage.map { UnsafePointer($0?.assumingMemoryBound(to: CChar.self)) }
        guard let name = try prepare(sql, parameterCount: parameters.count, on: pointer) else {
            roundTrips += 1
            return try collect(PQexecParams(pointer, sql, Int32(parameters.count), nil, values, lengths, formats, 0), pointer)
        }
        roundTrips += 1
        do {
            return try collect(PQexecPrepared(pointer, name, Int32(parameters.count), values, lengths, formats, 0), pointer)
        } catch let error as StoreError where error.sqlState == "0A000" || error.sqlState == "26000" {
            // The server dropped or invalidated the plan (a table changed shape): forget it and run unprepared.
            preparedStatements[sql] = nil
            roundTrips += 1
            return try collect(PQexecParams(pointer, sql, Int32(parameters.count), nil, values, lengths, formats, 0), pointer)
        }
    }

    /// The name of `sql` prepared on this session, preparing it on first use; nil
    /// when it cannot be prepared (inside a failed transaction, or the cache is full),
    /// in which case the caller runs it unprepared and gets the real error if any.
    /// - Throws: the server's error when preparing failed inside a transaction (a
    ///   missing privilege, a syntax error): the transaction is then aborted, and
    ///   running the statement again would report only SQLSTATE 25P02.
    private func prepare(_ sql: String, parameterCount: Int, on pointer: OpaquePointer) throws -> String? {
        if let name = preparedStatements[sql] { return name }
        guard preparedStatements.count < Self.preparedStatementLimit, PQtransactionStatus(pointer) != PQTRANS_INERROR else { return nil }
        let name = "osmose_\(preparedStatements.count + 1)"
        roundTrips += 1
        guard let result = PQprepare(pointer, name, sql, Int32(parameterCount), nil) else { return nil }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COMMAND_OK else {
            if PQtransactionStatus(pointer) == PQTRANS_INERROR { throw Self.error(from: result, connection: pointer) }
            return nil
        }
        preparedStatements[sql] = name
        return name
    }

    /// Runs one or more `;`-separated statements without parameters (migrations, `SET`).
    public func execute(_ script: String) throws {
        let owner = try live()
        defer { withExtendedLifetime(owner) {} }
        let pointer = owner.pointer
        roundTrips += 1
        var result = PQexec(pointer, script)
        // PQexec returns only the last statement's result; an error stops the script.
        _ = try collect(result, pointer)
        result = nil
    }

    private func collect(_ result: OpaquePointer?, _ pointer: OpaquePointer) throws -> QueryResult {
        guard let result else {
            throw StoreError(PQstatus(pointer) == CONNECTION_OK ? .queryFailed : .connectionLost, "no result: \(Self.lastError(pointer))")
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return Self.rows(of: result)
        default:
            throw Self.error(from: result, connection: pointer)
        }
    }

    private static func rows(of result: OpaquePointer) -> QueryResult {
        let columnCount = PQnfields(result)
        let rowCount = PQntuples(result)
        var columns: [String] = []
        var index: [String: Int] = [:]
        for column in 0..<columnCount {
            let name = String(cString: PQfname(result, column))
            columns.append(name)
            if index[name] == nil { index[name] = Int(column) }
        }
        var rows: [Row] = []
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(Int(columnCount))
            for column in 0..<columnCount {
                if PQgetisnull(result, row, column) == 1 {
                    values.append(nil)
                } else {
                    // The value lives in `result` (cleared by the caller after this returns) and is
                    // copied into the String before the next value is read.
                    let length = Int(PQgetlength(result, row, column))
                    let bytes = UnsafeRawBufferPointer(start: PQgetvalue(result, row, column), count: length)
                    values.append(String(decoding: bytes, as: UTF8.self))
                }
            }
            rows.append(Row(columnIndex: index, values: values))
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return QueryResult(columns: columns, rows: rows, affectedRows: affected)
    }

    static func error(from result: OpaquePointer, connection: OpaquePointer) -> StoreError {
        func field(_ code: Character) -> String? {
            guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        var objects: [String: String] = [:]
        for (key, code) in [("schema", "s"), ("table", "t"), ("column", "c"), ("constraint", "n"), ("type", "d")] as [(String, Character)] {
            if let value = field(code) { objects[key] = value }
        }
        let server = [field("M"), field("D").map { "detail: \($0)" }, field("H").map { "hint: \($0)" }].compactMap { $0 }
        let lost = PQstatus(connection) != CONNECTION_OK
        return StoreError(
            lost ? .connectionLost : .queryFailed, lost ? "the connection to the server was lost" : "the server rejected the statement",
            sqlState: field("C"), objects: objects, serverMessage: server.joined(separator: "; "))
    }

    // MARK: Transactions

    /// Runs `body` inside one transaction on this connection: commits if it returns,
    /// rolls back if it throws. `body` runs on the connection's thread, so its
    /// statements need no `await`.
    public func transaction<Result: Sendable>(
        isolation: IsolationLevel = .readCommitted,
        _ body: @Sendable (isolated Connection) throws -> Result
    ) throws -> Result {
        try execute("BEGIN ISOLATION LEVEL \(isolation.rawValue)")
        do {
            let result = try body(self)
            if let pointer = handle?.pointer, PQtransactionStatus(pointer) == PQTRANS_INERROR {
                throw StoreError(.queryFailed, "a statement failed inside the transaction; rolled back", sqlState: "25P02")
            }
            try execute("COMMIT")
            return result
        } catch {
            if let pointer = handle?.pointer, PQstatus(pointer) == CONNECTION_OK, PQtransactionStatus(pointer) != PQTRANS_IDLE {
                _ = try? execute("ROLLBACK")
            }
            throw error
        }
    }

    // MARK: COPY

    /// Streams rows into the server with `COPY … FROM STDIN`. `produce` writes the
    /// data in the format the statement names; it is sent in batches of about 256 KiB.
    /// If `produce` throws, the COPY is aborted and nothing is written.
    /// - Returns: the number of rows copied.
    @discardableResult
    public func copyIn(_ sql: String, _ produce: @Sendable (inout CopyInWriter) throws -> Void) throws -> Int {
        let owner = try live()
        defer { withExtendedLifetime(owner) {} }
        let pointer = owner.pointer
        try startCopy(sql, expecting: PGRES_COPY_IN, on: pointer)
        var writer = CopyInWriter(connection: pointer)
        var producerError: (any Error)?
        do {
            try produce(&writer)
            try writer.flush()
        } catch {
            producerError = error
        }
        if let producerError {
            // The server answers an abort with "canceled" (57014); the caller's error is the one that matters.
            _ = PQputCopyEnd(pointer, "aborted by the client")
            _ = try? finishCopy(pointer)
            throw producerError
        }
        guard PQputCopyEnd(pointer, nil) == 1 else {
            throw StoreError(.copyFailed, "COPY could not be ended: \(Self.lastError(pointer))")
        }
        return try finishCopy(pointer)
    }

    /// Streams the output of `COPY … TO STDOUT`, one row (or binary chunk) per call to `consume`.
    /// - Returns: the number of rows copied.
    @discardableResult
    public func copyOut(_ sql: String, _ consume: @Sendable ([UInt8]) throws -> Void) throws -> Int {
        try copyOutInPlace(sql) { chunk in try consume(Array(chunk)) }
    }

    /// Like ``copyOut(_:_:)``, but gathers the chunks (one row each, as libpq hands
    /// them) into buffers of at least `bufferBytes`, so that a stream of millions of
    /// small rows costs one allocation per buffer, not one per row. Each buffer holds
    /// whole rows; `consume` runs on this connection's thread.
    @discardableResult
    public func copyOutGathered(_ sql: String, bufferBytes: Int, _ consume: ([UInt8]) throws -> Void) throws -> Int {
        var gathered: [UInt8] = []
        gathered.reserveCapacity(bufferBytes + 65_536)
        let rows = try copyOutInPlace(sql) { chunk in
            gathered.append(contentsOf: chunk)
            guard gathered.count >= bufferBytes else { return }
            try consume(gathered)
            gathered = []
            gathered.reserveCapacity(bufferBytes + 65_536)
        }
        if !gathered.isEmpty { try consume(gathered) }
        return rows
    }

    /// Hands each chunk as the bytes libpq holds, valid only during the call: `consume`
    /// must copy what it keeps (the chunk is freed with PQfreemem as soon as it returns).
    @discardableResult
    func copyOutInPlace(_ sql: String, _ consume: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        let owner = try live()
        defer { withExtendedLifetime(owner) {} }
        let pointer = owner.pointer
        try startCopy(sql, expecting: PGRES_COPY_OUT, on: pointer)
        var consumerError: (any Error)?
        while true {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(pointer, &buffer, 0)
            if length == -1 { break }
            if length == -2 { throw StoreError(.copyFailed, "COPY OUT failed: \(Self.lastError(pointer))") }
            if let buffer {
                if consumerError == nil {
                    do { try consume(UnsafeRawBufferPointer(start: buffer, count: Int(length))) } catch { consumerError = error }
                }
                PQfreemem(buffer)
            }
        }
        let rows = try finishCopy(pointer)
        if let consumerError { throw consumerError }
        return rows
    }

    private func finishCopy(_ pointer: OpaquePointer) throws -> Int {
        var failure: StoreError?
        var rows = 0
        while let result = PQgetResult(pointer) {
            if PQresultStatus(result) == PGRES_COMMAND_OK {
                rows = Int(String(cString: PQcmdTuples(result))) ?? 0
            } else if failure == nil {
                failure = Self.error(from: result, connection: pointer)
            }
            PQclear(result)
        }
        if let failure { throw failure }
        return rows
    }

    // MARK: LISTEN / NOTIFY

    /// Starts listening on `channel`.
    public func listen(_ channel: String) throws {
        try execute("LISTEN \(try quoteIdentifier(channel))")
    }

    /// Stops listening on `channel`.
    public func unlisten(_ channel: String) throws {
        try execute("UNLISTEN \(try quoteIdentifier(channel))")
    }

    /// Sends `payload` on `channel` (delivered when the current transaction commits).
    public func notify(_ channel: String, payload: String = "") throws {
        try query("SELECT pg_notify($1, $2)", [channel, payload])
    }

    /// Waits up to `timeout` for notifications on the channels this connection
    /// listens to, returning at once with those already received. Returns an empty
    /// array on timeout. Keep the timeout short (≤ 1 s) so that cancellation is seen.
    public func waitForNotifications(timeout: Duration) throws -> [PostgresNotification] {
        let owner = try live()
        defer { withExtendedLifetime(owner) {} }
        let pointer = owner.pointer
        guard PQconsumeInput(pointer) == 1 else { throw StoreError(.connectionLost, "the connection to the server was lost") }
        var received = drainNotifications(pointer)
        guard received.isEmpty else { return received }
        var descriptor = pollfd(fd: PQsocket(pointer), events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let ready = poll(&descriptor, 1, milliseconds)
        if ready > 0 {
            guard PQconsumeInput(pointer) == 1 else { throw StoreError(.connectionLost, "the connection to the server was lost") }
            received = drainNotifications(pointer)
        }
        return received
    }

    private func drainNotifications(_ pointer: OpaquePointer) -> [PostgresNotification] {
        var received: [PostgresNotification] = []
        while let notification = PQnotifies(pointer) {
            // The strings live in the notification's own block, copied into Strings before PQfreemem.
            let value = notification.pointee
            received.append(PostgresNotification(
                channel: String(cString: value.relname), payload: String(cString: value.extra), senderProcessID: value.be_pid))
            PQfreemem(notification)
        }
        return received
    }

    /// Quotes `name` as an SQL identifier, for the rare statements (LISTEN, CREATE
    /// ROLE) that take no parameters.
    public func quoteIdentifier(_ name: String) throws -> String {
        let owner = try live()
        defer { withExtendedLifetime(owner) {} }
        let pointer = owner.pointer
        guard !name.isEmpty, !name.utf8.contains(0), let quoted = PQescapeIdentifier(pointer, name, name.utf8.count) else {
            throw StoreError(.invalidArgument, "not a valid SQL identifier")
        }
        defer { PQfreemem(quoted) }
        return String(cString: quoted)
    }
}

/// Writes COPY data, flushing to the server in batches.
///
/// It holds the `PGconn` of the connection running ``Connection/copyIn(_:_:)``,
/// which creates it and lends it to the producer `inout` only: being non-copyable
/// with an internal initialiser, it cannot be kept after `copyIn` returns, so its
/// pointer is used only while `copyIn` holds the connection open.
public struct CopyInWriter: ~Copyable {
    private let connection: OpaquePointer
    private var buffer: [UInt8] = []
    private static let batchSize = 256 * 1024

    init(connection: OpaquePointer) {
        self.connection = connection
        buffer.reserveCapacity(Self.batchSize + 4096)
    }

    /// Appends raw bytes.
    public mutating func write(_ bytes: some Sequence<UInt8>) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.batchSize { try flush() }
    }

    /// Appends a string's UTF-8 bytes.
    public mutating func write(_ text: String) throws { try write(text.utf8) }

    /// Appends one row in COPY's text format (the default of `COPY … FROM STDIN`):
    /// fields separated by tabs, `\N` for NULL, backslash escapes for the
    /// characters that would end a field or a row, bytea in hex.
    public mutating func writeRow(_ fields: [any PostgresEncodable]) throws {
        try write(fields.map { Self.textField($0.postgresValue) }.joined(separator: "\t") + "\n")
    }

    static func textField(_ value: PostgresValue) -> String {
        switch value {
        case .null:
            return "\\N"
        case .bytes(let bytes):
            // COPY text escapes the backslash of bytea's hex form: \\x0a1b…
            let digits = Array("0123456789abcdef".utf8)
            var hex: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "\\"), UInt8(ascii: "x")]
            hex.reserveCapacity(3 + bytes.count * 2)
            for byte in bytes {
                hex.append(digits[Int(byte >> 4)])
                hex.append(digits[Int(byte & 0x0F)])
            }
            return String(decoding: hex, as: UTF8.self)
        case .text(let text):
            var escaped = ""
            escaped.reserveCapacity(text.utf8.count)
            for character in text.unicodeScalars {
                switch character {
                case "\\": escaped += "\\\\"
                case "\n": escaped += "\\n"
                case "\r": escaped += "\\r"
                case "\t": escaped += "\\t"
                default: escaped.unicodeScalars.append(character)
                }
            }
            return escaped
        }
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        // `buffer` is not empty (checked above), so it has a base address; libpq copies the
        // bytes into its output buffer before returning.
        let status = buffer.withUnsafeBytes { bytes in
            PQputCopyData(connection, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(bytes.count))
        }
        guard status == 1 else {
            throw StoreError(.copyFailed, "sending COPY data failed: \(String(cString: PQerrorMessage(connection)))")
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
