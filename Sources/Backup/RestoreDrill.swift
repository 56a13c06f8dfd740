public import ErrorConventions
import Foundation
import Glibc
public import Journal
public import Logging
public import Store

/// An error of the restore drill, equal on its code.
public struct RestoreDrillError: CodedError {
    /// A stable identifier for the kind of failure.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `backup.drill.server_programs_not_found`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// No PostgreSQL server programs (`initdb`, `pg_ctl`) are installed where the drill looks.
        public static let serverProgramsNotFound = Code("backup.drill.server_programs_not_found")
        /// A program the drill runs could not be started.
        public static let cannotRun = Code("backup.drill.cannot_run")
        /// The drill's directory or the restored cluster's settings cannot be written.
        public static let workDirectory = Code("backup.drill.work_directory")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What went wrong and what to do.
    public let message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// Where PostgreSQL's server programs (`initdb`, `pg_ctl`, `postgres`) are
/// installed: Debian's `/usr/lib/postgresql/<version>/bin`, the newest version
/// that has an `initdb`, as `scripts/lib.sh`'s `postgres_bin` finds them.
public struct PostgresServerPrograms: Sendable, Hashable {
    /// Where the versions are looked for.
    public static let defaultSearchRoot = "/usr/lib/postgresql"

    /// The directory holding the programs.
    public let directory: String

    /// The programs in `directory`.
    public init(directory: String) {
        self.directory = directory
    }

    /// `pg_ctl`.
    public var pgCtl: String { directory + "/pg_ctl" }

    /// The programs of the newest version under `root`: `<root>/<version>/bin` with
    /// an executable `initdb`, versions compared number by number (16 after 9.6).
    /// - Throws: ``RestoreDrillError`` `.serverProgramsNotFound` naming the search path.
    public static func locate(under root: String = defaultSearchRoot) throws -> PostgresServerPrograms {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        let installed = versions.filter { access("\(root)/\($0)/bin/initdb", X_OK) == 0 }
        guard let newest = installed.max(by: { versionNumbers($0).lexicographicallyPrecedes(versionNumbers($1)) }) else {
            throw RestoreDrillError(
                .serverProgramsNotFound, "PostgreSQL server programs not found: no executable \(root)/*/bin/initdb; install the PostgreSQL server package")
        }
        return PostgresServerPrograms(directory: "\(root)/\(newest)/bin")
    }

    /// A version directory's name as numbers: `9.6` is [9, 6], `16` is [16].
    private static func versionNumbers(_ name: String) -> [Int] {
        name.split(whereSeparator: { !$0.isNumber }).map { Int($0) ?? 0 }
    }
}

/// The rows of one table of the restored cluster.
public struct TableRowCount: Sendable, Hashable, Codable {
    /// The table, schema-qualified.
    public let table: String
    /// How many rows it holds.
    public let rows: Int64
}

/// What ``RestoreDrill/check(restoredDatabase:)`` found.
public struct RestoredDatabaseCheck: Sendable {
    /// The row count of every table, in name order.
    public let tables: [TableRowCount]
    /// Every check that failed.
    public let problems: [String]
}

/// What a restore drill found.
public struct RestoreDrillReport: Sendable {
    /// The restore the drill made.
    public let restore: RestoreReport
    /// The row count of every table of the restored database, in name order.
    public let tables: [TableRowCount]
    /// Every check that failed; empty when the drill passed.
    public let problems: [String]

    /// True when every check held.
    public var passed: Bool { problems.isEmpty }
}

/// The sysadmin's restore drill: restores the latest backup into a temporary
/// cluster, starts it with the installed PostgreSQL, checks it (recovery ends and
/// the cluster accepts connections; every table of the suite's database is
/// counted; the restored journal verifies, without witness copies, which are newer
/// than any backup), stops it and removes it.
public struct RestoreDrill: Sendable {
    /// How long the restored cluster may take to start and to end recovery.
    public static let recoveryTimeout: Duration = .seconds(300)

    /// What restores the backup.
    public let restorer: BackupRestore
    /// PostgreSQL's restore_command for the restored cluster (fetching archived WAL).
    public let restoreCommand: String
    /// The suite's database inside the cluster.
    public let databaseName: String
    /// The server programs that run the restored cluster.
    public let programs: PostgresServerPrograms
    /// The drill's own directory (the cluster's data, socket and log).
    public let directory: String
    /// True to leave the stopped cluster in place instead of removing the directory.
    public let keep: Bool
    /// The keys the journal's checkpoints may be signed with; asked only when the
    /// restored journal has a checkpoint to verify.
    public let journalVerifierKeys: @Sendable () throws -> [NoteVerifierKey]
    /// Told, before anything is restored, the files the restore accepts without a
    /// signature (the restorer's trust allows it: `--accept-unsigned`); it records
    /// that decision, and refuses the drill by throwing.
    public let acceptingUnsigned: @Sendable ([String]) async throws -> Void
    /// Where progress is logged.
    public let logger: Logger

    /// A drill.
    /// - Parameters:
    ///   - restorer: restores the backup (its store and identities).
    ///   - restoreCommand: PostgreSQL's restore_command for the restored cluster.
    ///   - databaseName: the suite's database inside the cluster.
    ///   - programs: the installed PostgreSQL server programs (``PostgresServerPrograms/locate(under:)``).
    ///   - directory: the drill's own directory; nil for a new directory under /tmp.
    ///   - keep: leave the stopped cluster in place.
    ///   - journalVerifierKeys: the journal's verifier keys, asked for only when needed.
    ///   - acceptingUnsigned: records the unsigned files the restore accepts, before it starts; throws to refuse.
    ///   - logger: where progress is logged.
    public init(
        restorer: BackupRestore, restoreCommand: String, databaseName: String, programs: PostgresServerPrograms, directory: String? = nil,
        keep: Bool = false, journalVerifierKeys: @escaping @Sendable () throws -> [NoteVerifierKey],
        acceptingUnsigned: @escaping @Sendable ([String]) async throws -> Void = { _ in }, logger: Logger
    ) {
        self.restorer = restorer
        self.restoreCommand = restoreCommand
        self.databaseName = databaseName
        self.programs = programs
        self.directory = directory ?? "/tmp/osmose-drill-\(UUID().uuidString.prefix(8).lowercased())"
        self.keep = keep
        self.journalVerifierKeys = journalVerifierKeys
        self.acceptingUnsigned = acceptingUnsigned
        self.logger = logger
    }

    /// The database named by a libpq connection string in key=value form (`dbname=…`), else `osmose`.
    public static func databaseName(inConnectionString connection: String) -> String {
        connection.split(separator: " ").last { $0.hasPrefix("dbname=") }.map { String($0.dropFirst(7)) } ?? "osmose"
    }

    /// Runs the drill. A failed check is a problem in the report; the drill's
    /// directory is removed (unless `keep`) whether the drill passes, fails or throws.
    /// - Throws: ``BackupIntegrityError`` when the store cannot be trusted (nothing is
    ///   restored), ``ArchiveError`` when the restore itself fails, ``RestoreDrillError``
    ///   when the directory cannot be prepared or a program cannot be started.
    public func run() async throws -> RestoreDrillReport {
        do {
            let report = try await restoreAndCheck()
            if !keep { try? FileManager.default.removeItem(atPath: directory) }
            return report
        } catch {
            if !keep { try? FileManager.default.removeItem(atPath: directory) }
            throw error
        }
    }

    private var dataDirectory: String { directory + "/data" }
    private var socketDirectory: String { directory + "/socket" }

    private func restoreAndCheck() async throws -> RestoreDrillReport {
        let (restorer, data, restoreCommand) = (self.restorer, dataDirectory, self.restoreCommand)
        do {
            try FileManager.default.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        } catch {
            throw RestoreDrillError(.workDirectory, "cannot create \(socketDirectory): \(error.localizedDescription)")
        }
        let plan = try await Self.onOwnThread { try restorer.prepare(.latest) }
        if !plan.unsignedAccepted.isEmpty { try await acceptingUnsigned(plan.unsignedAccepted) }
        let restored = try await Self.onOwnThread { try restorer.restore(plan, into: data, restoreCommand: restoreCommand) }
        logger.info("restored for the drill", metadata: ["osmose.backup.id": "\(restored.backup)", "osmose.backup.drill": "\(directory)"])
        let port = 20000 + Int.random(in: 0..<20000)
        try provideConfigurationFiles()
        try appendSettings("port = \(port)\nlisten_addresses = ''\nunix_socket_directories = '\(socketDirectory)'\n")
        if getuid() == 0 { _ = try await runProgram("/bin/chown", ["-R", "postgres:postgres", directory], asServerOwner: false) }
        let started = try await runProgram(
            programs.pgCtl, ["-D", data, "-l", "\(directory)/server.log", "-w", "-t", "\(Self.recoveryTimeout.components.seconds)", "start"])
        guard started == 0 else {
            return RestoreDrillReport(restore: restored, tables: [], problems: ["the restored cluster did not start (see \(directory)/server.log)"])
        }
        let checked: RestoredDatabaseCheck
        do {
            let connection = "host=\(socketDirectory) port=\(port) user=postgres dbname=\(databaseName)"
            checked = try await Connection.withConnection(connection, applicationName: "osmose-restore-drill", logger: logger) { connection in
                try await check(restoredDatabase: connection)
            }
        } catch {
            checked = RestoredDatabaseCheck(tables: [], problems: ["checking the restored cluster: \(error)"])
        }
        _ = try await runProgram(programs.pgCtl, ["-D", data, "-m", "fast", "-w", "stop"])
        return RestoreDrillReport(restore: restored, tables: checked.tables, problems: checked.problems)
    }

    /// Writes the configuration files a cluster needs to start when the backup holds
    /// none: Debian's clusters keep postgresql.conf, pg_hba.conf and pg_ident.conf in
    /// /etc/postgresql/<version>/<name>, outside the data directory a base backup
    /// copies. The drill's cluster listens only on its private socket directory;
    /// peer authentication lets the drill's own user in. A file the backup holds is
    /// left as it is.
    private func provideConfigurationFiles() throws {
        let texts = [
            "postgresql.conf": "# Written by the restore drill: the backed-up cluster keeps its configuration outside its data directory.\n",
            "pg_hba.conf": "# Written by the restore drill: its private socket only.\nlocal all all peer\n",
            "pg_ident.conf": "# Written by the restore drill.\n",
        ]
        for name in BackupRestore.missingConfiguration(in: dataDirectory) {
            let path = "\(dataDirectory)/\(name)"
            guard let text = texts[name] else { throw RestoreDrillError(.workDirectory, "no text for \(path), which a restored cluster needs") }
            do {
                try text.write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                throw RestoreDrillError(.workDirectory, "cannot write \(path): \(error.localizedDescription)")
            }
        }
    }

    /// Appends settings to the restored cluster's postgresql.auto.conf.
    private func appendSettings(_ settings: String) throws {
        let path = dataDirectory + "/postgresql.auto.conf"
        do {
            let current = try String(contentsOfFile: path, encoding: .utf8)
            try (current + settings).write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw RestoreDrillError(.workDirectory, "cannot set up \(path): \(error.localizedDescription)")
        }
    }

    /// Checks the suite's database in a restored cluster, once it is started: waits
    /// for recovery to end, counts the rows of every table and, when the journal has
    /// a checkpoint, verifies the journal (without witness copies).
    /// - Parameter connection: a connection to the restored database.
    /// - Returns: the counts and the problems found.
    /// - Throws: ``StoreError`` when the database cannot be read.
    public func check(restoredDatabase connection: Connection) async throws -> RestoredDatabaseCheck {
        let deadline = ContinuousClock.now + Self.recoveryTimeout
        while try await connection.perform({ try RestoredCluster.isInRecovery(on: $0) }) {
            guard ContinuousClock.now < deadline else {
                return RestoredDatabaseCheck(tables: [], problems: ["recovery did not end within \(Self.recoveryTimeout.components.seconds) s"])
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let tables = try await connection.perform { try RestoredCluster.rowCounts(on: $0) }
        guard try await connection.perform({ try RestoredCluster.hasJournalCheckpoint(on: $0) }) else { return RestoredDatabaseCheck(tables: tables, problems: []) }
        return RestoredDatabaseCheck(tables: tables, problems: try await verifyJournal(connection))
    }

    /// Verifies the restored journal in one snapshot; returns the problems found.
    private func verifyJournal(_ connection: Connection) async throws -> [String] {
        let keys: [NoteVerifierKey]
        do {
            keys = try journalVerifierKeys()
        } catch {
            return ["cannot verify the restored journal: \(error)"]
        }
        let now = Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
        let report = try await connection.transaction(isolation: .repeatableRead) { connection in
            try JournalVerifier(keys: keys, now: now).verify(DatabaseSnapshot(connection: connection))
        }
        guard !report.passed else { return [] }
        let first = report.firstBadSequence.map { "first bad sequence number: \($0); " } ?? ""
        return ["the restored journal does not verify: \(first)\(report.failures.map(\.description).joined(separator: "; "))"]
    }

    /// Runs a program (as the cluster's owner, postgres, when running as root) with
    /// its output discarded, on a thread of its own; returns its exit status.
    private func runProgram(_ path: String, _ arguments: [String], asServerOwner: Bool = true) async throws -> Int32 {
        let command = asServerOwner && getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", path] + arguments : [path] + arguments
        return try await Self.onOwnThread { try Self.spawnAndWait(command) }
    }

    /// posix_spawn and waitpid: Foundation's Process can miss a child's exit when waited for from an async context.
    private static func spawnAndWait(_ command: [String]) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, nil, argv, environ)
        guard spawned == 0 else { throw RestoreDrillError(.cannotRun, "cannot run \(command[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw RestoreDrillError(.cannotRun, "waiting for \(command[0]) failed: \(String(cString: strerror(errno)))") }
        }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Runs blocking work (a restore, a program waited for) on a thread of its own,
    /// off Swift's cooperative pool.
    private static func onOwnThread<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Swift.Result { try body() }) }.start()
        }
    }
}

/// The SQL the drill runs on the restored cluster.
enum RestoredCluster {
    /// True while the cluster still replays WAL.
    static func isInRecovery(on connection: isolated Connection) throws -> Bool {
        try connection.query("SELECT pg_is_in_recovery() AS r").rows[0].bool("r")
    }

    /// The row count of every user table, in name order.
    static func rowCounts(on connection: isolated Connection) throws -> [TableRowCount] {
        let tables = try connection.query("SELECT format('%I.%I', schemaname, relname) AS t FROM pg_stat_user_tables ORDER BY 1").rows.map { try $0.string("t") }
        return try tables.map { table in
            TableRowCount(table: table, rows: try connection.query("SELECT count(*) AS n FROM \(table)").rows[0].int64("n"))
        }
    }

    /// True when the database has a journal with at least one checkpoint to verify against.
    static func hasJournalCheckpoint(on connection: isolated Connection) throws -> Bool {
        guard try connection.query("SELECT to_regclass('journal.checkpoints') IS NOT NULL AS j").rows[0].bool("j") else { return false }
        return try JournalDatabase.latestCheckpoint(on: connection) != nil
    }
}
