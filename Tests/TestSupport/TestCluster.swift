import Foundation
import Glibc

/// A PostgreSQL cluster of its own, for the tests that need what a shared cluster
/// cannot give: WAL archiving through osmose-backupd, base backups, restores.
/// Runs as the `postgres` user when the tests run as root (initdb refuses root).
public final class TestCluster: @unchecked Sendable {
    /// The directory holding the cluster's data, socket, log and anything the test puts beside them.
    public let directory: String
    /// The data directory.
    public var dataDirectory: String { directory + "/data" }
    /// The socket directory.
    public var socketDirectory: String { directory + "/socket" }
    /// The port.
    public let port: Int

    /// PostgreSQL's programs.
    public static let bin = "/usr/lib/postgresql/15/bin"

    /// A new cluster with `settings` appended to postgresql.conf (not started).
    public init(_ label: String, settings: String = "") async throws {
        directory = "/tmp/osmose-cluster-\(label)-\(UUID().uuidString.prefix(8).lowercased())"
        port = try Self.freePort()
        try FileManager.default.createDirectory(atPath: directory + "/socket", withIntermediateDirectories: true)
        try Self.giveToOwner(directory)
        let initdb = try await asOwner(["\(Self.bin)/initdb", "-D", dataDirectory, "--auth=trust", "--no-sync", "-U", "postgres", "--encoding=UTF8", "--locale=C.UTF-8"])
        guard initdb.status == 0 else { throw TestEnvironmentError("initdb failed: \(initdb.standardError)") }
        try appendSettings("""
            listen_addresses = ''
            unix_socket_directories = '\(socketDirectory)'
            port = \(port)
            wal_level = replica
            max_wal_senders = 4
            log_min_messages = warning
            \(settings)
            """)
    }

    /// Appends lines to postgresql.conf (a restart applies them).
    public func appendSettings(_ text: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dataDirectory + "/postgresql.conf"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(("\n" + text + "\n").utf8))
        try handle.close()
    }

    /// A libpq connection string to `database` as `user`.
    public func connectionString(database: String = "postgres", user: String = "postgres") -> String {
        "host=\(socketDirectory) port=\(port) user=\(user) dbname=\(database)"
    }

    /// Starts it (or any cluster in `dataDirectory`, e.g. a restored one).
    public func start(dataDirectory: String? = nil) async throws {
        let data = dataDirectory ?? self.dataDirectory
        let started = try await asOwner(["\(Self.bin)/pg_ctl", "-D", data, "-l", "\(directory)/server-\(UUID().uuidString.prefix(4)).log", "-w", "-t", "120", "start"])
        guard started.status == 0 else {
            let logs = (try? FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix("server") }) ?? []
            let text = logs.compactMap { try? String(contentsOfFile: "\(directory)/\($0)", encoding: .utf8) }.joined(separator: "\n")
            throw TestEnvironmentError("pg_ctl start failed: \(started.standardError)\n\(text.suffix(3000))")
        }
    }

    /// Stops it (fast shutdown).
    public func stop(dataDirectory: String? = nil) async {
        _ = try? await asOwner(["\(Self.bin)/pg_ctl", "-D", dataDirectory ?? self.dataDirectory, "-m", "fast", "-w", "stop"])
    }

    /// Stops it and removes its directory.
    public func destroy() async {
        await stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Creates a cluster (not started), runs `body` with it, and destroys it on every
    /// path: a failed `#require` or any error leaves no server running and no directory.
    public static func with<Result>(_ label: String, settings: String = "", _ body: (TestCluster) async throws -> Result) async throws -> Result {
        try await withResource(try await TestCluster(label, settings: settings), release: { await $0.destroy() }, body)
    }

    /// Runs `arguments` as the cluster's owner (postgres when the tests run as root).
    public func asOwner(_ arguments: [String], environment: [String: String] = [:]) async throws -> ProcessOutcome {
        if getuid() == 0 {
            return try await runProgram("/usr/sbin/runuser", ["-u", "postgres", "--"] + arguments, environment: environment)
        }
        return try await runProgram(arguments[0], Array(arguments.dropFirst()), environment: environment)
    }

    /// Gives `path` (recursively) to the cluster's owner when the tests run as root.
    public static func giveToOwner(_ path: String) throws {
        guard getuid() == 0, let owner = getpwnam("postgres") else { return }
        let uid = owner.pointee.pw_uid
        let gid = owner.pointee.pw_gid
        chown(path, uid, gid)
        if let walker = FileManager.default.enumerator(atPath: path) {
            for case let relative as String in walker { chown("\(path)/\(relative)", uid, gid) }
        }
    }

    /// Creates the directory `path` (if missing) for files that this process (root)
    /// and the cluster's owner both write and read: owned by root, group the owner's,
    /// mode 2770, so that every file created in it later gets that group (a file a
    /// daemon replaces by a rename stays readable, which a one-off chown cannot
    /// promise). Does nothing more when not root.
    public static func shareWithOwnerGroup(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard getuid() == 0, let owner = getpwnam("postgres") else { return }
        guard chown(path, 0, owner.pointee.pw_gid) == 0, chmod(path, 0o2770) == 0 else {
            throw TestEnvironmentError("cannot share \(path) with the postgres group: \(String(cString: strerror(errno)))")
        }
    }

    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw TestEnvironmentError("no free port") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(descriptor, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
