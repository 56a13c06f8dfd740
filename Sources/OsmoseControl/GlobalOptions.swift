import ArgumentParser
import Settings
import Foundation
import Journal
import Logging
import Store
import Systemd

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default: $OSMOSE_CONFIG, else /etc/osmose/osmose.yaml).")
    var config: String?

    @Option(name: .long, help: "libpq connection string overriding database.connection (e.g. \"host=/run/postgresql user=postgres dbname=osmose\").")
    var database: String?

    @Flag(name: .long, help: "Log progress to standard error.")
    var verbose = false

    /// The configuration in force: the named file, or the defaults when no file is
    /// named and the default path does not exist.
    func loadConfiguration() throws -> SuiteConfiguration {
        if let path = config ?? ProcessInfo.processInfo.environment["OSMOSE_CONFIG"] {
            return try SuiteConfiguration.load(path: path)
        }
        guard FileManager.default.fileExists(atPath: SuiteConfiguration.defaultPath) else { return .defaults }
        return try SuiteConfiguration.load(path: SuiteConfiguration.defaultPath)
    }

    var logger: Logger {
        var logger = Logger(label: "osmosectl") { JournaldLogHandler(label: $0, format: .console) }
        logger.logLevel = verbose ? .info : .warning
        return logger
    }

    /// Opens a connection as configured, runs `body` with it and closes it, whether
    /// `body` returns or throws.
    func withConnection<Result>(_ body: (Connection) async throws -> Result) async throws -> Result {
        let configuration = try loadConfiguration()
        return try await Connection.withConnection(
            database ?? configuration.database.connection, applicationName: "osmosectl", logger: logger, body)
    }

    /// Runs `body` in one REPEATABLE READ transaction on a new connection, then closes
    /// it: every read of a journal command sees the same snapshot while
    /// osmose-journald keeps appending.
    func withSnapshot<Result: Sendable>(_ body: @Sendable (isolated Connection) throws -> Result) async throws -> Result {
        try await withConnection { connection in try await connection.transaction(isolation: .repeatableRead, body) }
    }

    /// Journals `event` in a transaction of its own.
    func record(_ event: AccessEvent) async throws {
        try await withConnection { connection in try await connection.transaction { connection in try connection.record(event) } }
    }
}

/// The person running `osmosectl`, acting in `role` (the journal's actor).
func operatorActor(_ role: ActorRole) -> SystemActor {
    .operator(operatorIdentity, role: role)
}

/// Records an administrative action of the sysadmin running `osmosectl` in the
/// access journal, in the caller's transaction (the same as the change).
func recordAdministration(_ action: AccessAction, objectType: String, objectID: String?, reason: String? = nil, on connection: isolated Connection) throws {
    try connection.record(AccessEvent.system(by: operatorActor(.sysadmin), action: action, objectType: objectType, objectID: objectID, reason: reason))
}

/// Who ran a command, for records such as `ops.schema_migrations.applied_by`.
var operatorIdentity: String {
    let user = getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) } ?? "uid \(geteuid())"
    return "\(user)@\(ProcessInfo.processInfo.hostName) via osmosectl \(SuiteVersion.current)"
}

let versionString = SuiteVersion.current

/// Writes a value as indented JSON with sorted keys and ISO 8601 dates.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints rows as aligned columns under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    for row in [header] + rows {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        print(cells.joined(separator: "  "))
    }
}

/// An ISO 8601 UTC timestamp to the second.
func isoTimestamp(_ date: Date) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: date)
}

/// An RFC 3339 time, with or without fractional seconds.
func rfc3339Moment(_ text: String) -> Date? {
    let precise = ISO8601DateFormatter()
    precise.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return precise.date(from: text) ?? ISO8601DateFormatter().date(from: text)
}
