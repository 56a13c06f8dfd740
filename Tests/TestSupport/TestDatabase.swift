public import Foundation
public import Logging
import Store

/// A database of its own on the cluster that `scripts/test` starts, so that test
/// suites can run in parallel without seeing each other's rows.
public struct TestDatabase: Sendable {
    /// The libpq connection string of the new database.
    public let connectionString: String
    /// Its name.
    public let name: String

    /// The administrator connection string from `scripts/pg env`.
    public static func administratorConnectionString() throws -> String {
        guard let value = ProcessInfo.processInfo.environment["OSMOSE_TEST_DATABASE_URL"], !value.isEmpty else {
            throw TestEnvironmentError(
                "OSMOSE_TEST_DATABASE_URL is not set: run the tests through scripts/test, or eval \"$(scripts/pg env)\" first")
        }
        return value
    }

    /// Creates a fresh, empty database named after `purpose`.
    public static func create(_ purpose: String) async throws -> TestDatabase {
        let admin = try administratorConnectionString()
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let name = "test_\(purpose.lowercased().filter { $0.isLetter || $0.isNumber || $0 == "_" })_\(suffix)"
        let connection = try await Connection.connect(admin, logger: testLogger)
        try await connection.execute("CREATE DATABASE \(try await connection.quoteIdentifier(name))")
        await connection.close()
        return TestDatabase(connectionString: "\(admin) dbname=\(name)", name: name)
    }

    /// Drops the database, terminating any session still connected.
    public func drop() async {
        guard let admin = try? Self.administratorConnectionString(),
            let connection = try? await Connection.connect(admin, logger: testLogger)
        else { return }
        _ = try? await connection.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name])
        if let quoted = try? await connection.quoteIdentifier(name) {
            _ = try? await connection.execute("DROP DATABASE IF EXISTS \(quoted)")
        }
        await connection.close()
    }
}

/// The environment is not set up for the integration tests.
public struct TestEnvironmentError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A logger for tests: warnings and errors only.
public let testLogger: Logger = {
    var logger = Logger(label: "osmose.tests")
    logger.logLevel = .warning
    return logger
}()

/// The outcome of running a program.
public struct ProcessOutcome: Sendable {
    public let status: Int32
    public let standardOutput: String
    public let standardError: String
}

/// Runs `executable` with `arguments` and extra environment, waiting for it to end.
public func runProgram(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:], input: String? = nil
) throws -> ProcessOutcome {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let output = Pipe(), errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    let stdin = Pipe()
    process.standardInput = stdin
    try process.run()
    if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
    try stdin.fileHandleForWriting.close()
    // Read both pipes before waiting so that a chatty child never blocks on a full pipe.
    let collected = OutputCollector()
    let group = DispatchGroup()
    for (pipe, isError) in [(output, false), (errors, true)] {
        group.enter()
        DispatchQueue.global().async {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            collected.store(data, isError: isError)
            group.leave()
        }
    }
    group.wait()
    process.waitUntilExit()
    return ProcessOutcome(status: process.terminationStatus, standardOutput: collected.output, standardError: collected.errors)
}

private final class OutputCollector: @unchecked Sendable {
    // Written once per stream from the reading threads, under the lock; read after both finished.
    private let lock = NSLock()
    private(set) var output = ""
    private(set) var errors = ""
    func store(_ data: Data, isError: Bool) {
        lock.lock()
        defer { lock.unlock() }
        if isError { errors = String(decoding: data, as: UTF8.self) } else { output = String(decoding: data, as: UTF8.self) }
    }
}

/// The folder holding the built executables: `$OSMOSE_BIN_DIR`, else beside the test bundle.
public func builtExecutablesDirectory() -> URL {
    if let directory = ProcessInfo.processInfo.environment["OSMOSE_BIN_DIR"], !directory.isEmpty {
        return URL(fileURLWithPath: directory)
    }
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.pathExtension == "xctest" || url.lastPathComponent == "MacOS" || url.lastPathComponent == "Contents" {
        url.deleteLastPathComponent()
    }
    if url.lastPathComponent.hasSuffix(".xctest") { url.deleteLastPathComponent() }
    return url.hasDirectoryPath ? url : url.deletingLastPathComponent()
}

/// The repository's root folder.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
