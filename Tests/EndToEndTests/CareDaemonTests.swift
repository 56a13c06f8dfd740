import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Glibc
import Testing
import TestSupport

@Suite("osmose-care as systemd runs it")
struct CareDaemonTests {
    let bin = builtExecutablesDirectory()

    /// A migrated database with a keyring, and a configuration file for the daemon.
    /// Runs `body` with ``prepare(_:port:policy:)``'s database, configuration and master key file; the database is dropped on every path.
    func withPrepared<Result>(_ name: String, port: Int, policy: String? = nil, _ body: (TestDatabase, String, String) async throws -> Result) async throws -> Result {
        try await withResource(try await prepare(name, port: port, policy: policy), release: { await $0.0.drop() }) { try await body($0.0, $0.1, $0.2) }
    }

    func prepare(_ name: String, port: Int, policy: String? = nil) async throws -> (TestDatabase, String, String) {
        let database = try await TestDatabase.create(name)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-care-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let master = directory.appendingPathComponent("master.key").path
        let osmosectl = bin.appendingPathComponent("osmosectl").path
        #expect(try await runProgram(osmosectl, ["db", "migrate", "--database", database.connectionString]).status == 0)
        #expect(try await runProgram(osmosectl, ["keys", "generate-master", "--out", master]).status == 0)
        #expect(try await runProgram(osmosectl, ["keys", "init", "--database", database.connectionString, "--master-key", master]).status == 0)
        let policyPath = policy ?? repositoryRoot.appendingPathComponent("policies/access.yaml").path
        let config = directory.appendingPathComponent("osmose.yaml").path
        try """
            database:
              connection: "\(database.connectionString)"
            care:
              listen: 127.0.0.1:\(port)
              database: "\(database.connectionString) user=osmose_care"
              master_key_file: \(master)
              access_policy: \(policyPath)
            """.write(toFile: config, atomically: true, encoding: .utf8)
        return (database, config, master)
    }

    func freePort() -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0, sin_addr: in_addr(s_addr: inet_addr("127.0.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @Test("Starts, tells systemd READY, serves, and stops cleanly on SIGTERM with STOPPING, within the shutdown deadline")
    func lifecycle() async throws {
        let port = freePort()
        try await withPrepared("caredaemon", port: port) { database, config, _ in
            let notify = try DatagramSocket()
            let notifyPath = notify.address
            let daemon = try BackgroundProcess(bin.appendingPathComponent("osmose-care").path, ["--config", config], environment: ["NOTIFY_SOCKET": notifyPath])
            let ready = try await offThePool { [notify] in notify.receive() }
            #expect(ready?.contains("READY=1") == true, "\(ready ?? "no notification")")
            #expect(ready?.contains("STATUS=serving on 127.0.0.1:\(port)") == true)
            let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/v1/health")!)
            #expect((response as? HTTPURLResponse)?.statusCode == 200)
            #expect(String(decoding: data, as: UTF8.self).contains("ok"))
            let signalled = ContinuousClock.now
            daemon.signal(SIGTERM)
            let stopping = try await offThePool { [notify] in notify.receive() }
            #expect(stopping?.contains("STOPPING=1") == true)
            let outcome = try await daemon.wait()
            #expect(outcome.status == 0, "\(outcome.standardError)")
            #expect(ContinuousClock.now - signalled < .seconds(25), "below ShutdownDeadline.total, itself below TimeoutStopSec=30s")
        }
    }

    @Test("A wrong master key or a malformed policy stops it at start with one clear line")
    func refusals() async throws {
        let port = freePort()
        try await withPrepared("carerefuse", port: port) { database, config, master in
            let wrong = master + ".other"
            #expect(try await runProgram(bin.appendingPathComponent("osmosectl").path, ["keys", "generate-master", "--out", wrong]).status == 0)
            let wrongConfig = config + ".wrong.yaml"
            try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: master, with: wrong).write(toFile: wrongConfig, atomically: true, encoding: .utf8)
            let refused = try await runProgram(bin.appendingPathComponent("osmose-care").path, ["--config", wrongConfig])
            #expect(refused.status == 6)
            #expect(refused.standardError.contains("keyring.wrong_master_key"))
            #expect(refused.standardError.split(separator: "\n").count == 1)

            let badPolicy = FileManager.default.temporaryDirectory.appendingPathComponent("access-\(UUID().uuidString.prefix(8)).yaml").path
            try "default: deny\nrules:\n  - role: admin\n    resource: patient\n    actions: [read]\n    purposes: [care]\n".write(toFile: badPolicy, atomically: true, encoding: .utf8)
            let policyConfig = config + ".policy.yaml"
            try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: repositoryRoot.appendingPathComponent("policies/access.yaml").path, with: badPolicy)
                .write(toFile: policyConfig, atomically: true, encoding: .utf8)
            let policyRefused = try await runProgram(bin.appendingPathComponent("osmose-care").path, ["--config", policyConfig])
            #expect(policyRefused.status == 3)
            #expect(policyRefused.standardError.contains("\(badPolicy):4:"))
            #expect(policyRefused.standardError.contains("may not be given care content"))
        }
    }

    @Test("A bad configuration is 3, an unreachable database 4, a missing master key 6, each told to systemd")
    func documentedStatuses() async throws {
        let port = freePort()
        try await withPrepared("carestatus", port: port) { database, config, master in
            let text = try String(contentsOfFile: config, encoding: .utf8)
            let daemon = bin.appendingPathComponent("osmose-care").path
            let cases: [(name: String, text: String, status: Int32, code: String)] = [
                ("bad", text + "\n  colour: red\n", 3, "config.unknown_setting"),
                ("nodb", text.replacingOccurrences(of: "\(database.connectionString) user=osmose_care", with: "host=/nonexistent/osmose port=1 dbname=none"), 4, "store.connection_failed"),
                ("nokey", text.replacingOccurrences(of: master, with: master + ".absent"), 6, "keyring.master_key_unavailable"),
            ]
            for (name, variant, status, code) in cases {
                let path = config + ".\(name).yaml"
                try variant.write(toFile: path, atomically: true, encoding: .utf8)
                let notify = try DatagramSocket()
                let refused = try await runProgram(daemon, ["--config", path], environment: ["NOTIFY_SOCKET": notify.address])
                #expect(refused.status == status, "\(name): \(refused.standardError)")
                #expect(refused.standardError.hasPrefix("osmose-care: ") && refused.standardError.contains(code), "\(name): \(refused.standardError)")
                let told = try await offThePool { [notify] in notify.receive() }
                #expect(told?.contains("ERRNO=\(status)") == true && told?.contains("STATUS=failed: ") == true, "\(name): \(told ?? "nothing")")
            }
        }
    }
}
