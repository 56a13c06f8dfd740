public import Foundation
import Store
import Glibc

/// The outcome of running a program.
public struct ProcessOutcome: Sendable {
    public let status: Int32
    public let standardOutput: String
    public let standardError: String
}

/// Runs `body` on a thread of its own, so that a blocking call (waiting for a
/// child process, a socket) never holds one of the cooperative pool's few threads.
public func offThePool<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Swift.Result { try body() }) }
        thread.start()
    }
}

/// Runs `executable` with `arguments` and extra environment until it exits, on a
/// thread of its own. Output goes through temporary files, so a chatty child can
/// never block on a full pipe.
public func runProgram(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:], input: String? = nil
) async throws -> ProcessOutcome {
    try await offThePool { try runProgramBlocking(executable, arguments, environment: environment, input: input) }
}

private func runProgramBlocking(
    _ executable: String, _ arguments: [String], environment: [String: String], input: String?
) throws -> ProcessOutcome {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let inputPath = directory.appendingPathComponent("in").path
    let outputPath = directory.appendingPathComponent("out").path
    let errorPath = directory.appendingPathComponent("err").path
    try (input ?? "").write(toFile: inputPath, atomically: false, encoding: .utf8)

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, inputPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

    let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .ENOENT) }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw POSIXError(.ECHILD) }
    }
    let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return ProcessOutcome(
        status: exitStatus,
        standardOutput: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "",
        standardError: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "")
}

/// The folder holding the built executables: the build folder of this test bundle
/// (`.build/debug`, `.build-asan/debug`…), so that a sanitized suite starts the
/// executables built with the same sanitizer; `$OSMOSE_BIN_DIR` only when that
/// folder holds no `osmosectl` (a test bundle copied elsewhere).
public func builtExecutablesDirectory() -> URL {
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.pathExtension == "xctest" || url.lastPathComponent == "MacOS" || url.lastPathComponent == "Contents" {
        url.deleteLastPathComponent()
    }
    if url.lastPathComponent.hasSuffix(".xctest") { url.deleteLastPathComponent() }
    let bundleDirectory = url.hasDirectoryPath ? url : url.deletingLastPathComponent()
    if FileManager.default.isExecutableFile(atPath: bundleDirectory.appendingPathComponent("osmosectl").path) { return bundleDirectory }
    if let directory = ProcessInfo.processInfo.environment["OSMOSE_BIN_DIR"], !directory.isEmpty {
        return URL(fileURLWithPath: directory)
    }
    return bundleDirectory
}

/// The repository's root folder.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A program started in the background, with its output going to files. One that
/// was never waited for (a test that failed half-way) is killed and reaped when the
/// last reference goes, so that no daemon outlives its test.
public final class BackgroundProcess: Sendable {
    public let pid: pid_t
    let directory: URL
    private let reaped = Locked(false)

    /// Starts `executable`; it inherits this process's environment plus `environment`.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-bg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, directory.appendingPathComponent("out").path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, directory.appendingPathComponent("err").path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let merged = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var spawned: pid_t = 0
        let status = posix_spawn(&spawned, executable, &actions, nil, argv, envp)
        guard status == 0 else { throw POSIXError(POSIXErrorCode(rawValue: status) ?? .ENOENT) }
        pid = spawned
    }

    /// Sends a signal.
    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// True while the process runs: it exists and is not a zombie waiting to be reaped.
    public var isRunning: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        return !stat.split(separator: ")").last!.trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    deinit {
        guard !reaped.withLock({ $0 }) else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        try? FileManager.default.removeItem(at: directory)
    }

    /// Waits for the exit (off the cooperative pool) and returns the status and output.
    public func wait() async throws -> ProcessOutcome {
        let pid = self.pid
        let directory = self.directory
        return try await offThePool { [self] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 { guard errno == EINTR else { throw POSIXError(.ECHILD) } }
            self.reaped.withLock { $0 = true }
            let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            defer { try? FileManager.default.removeItem(at: directory) }
            return ProcessOutcome(
                status: exit, standardOutput: (try? String(contentsOf: directory.appendingPathComponent("out"), encoding: .utf8)) ?? "",
                standardError: (try? String(contentsOf: directory.appendingPathComponent("err"), encoding: .utf8)) ?? "")
        }
    }
}

/// Polls `condition` every 50 ms until it holds.
/// - Throws: ``TestEnvironmentError`` naming `what` after `timeout`.
public func waitUntil(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestEnvironmentError("timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(50))
    }
}
