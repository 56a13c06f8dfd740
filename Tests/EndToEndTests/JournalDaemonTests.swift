import Foundation
import Glibc
import Journal
import Store
import Testing
import TestSupport

/// A client of the intake socket's framed JSON protocol.
final class IntakeClient {
    let descriptor: Int32

    init(path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        // deinit closes the socket, also when this initialiser throws (every stored property
        // is set): closing it here too closed a descriptor another test had just opened.
        guard connected == 0 else { throw TestEnvironmentError("cannot connect to \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(descriptor) }

    func send(raw bytes: [UInt8]) { _ = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
    func send(json: String) { send(raw: IntakeClient.frame(Array(json.utf8))) }
    func finishWriting() { shutdown(descriptor, Int32(SHUT_WR)) }

    static func frame(_ body: [UInt8]) -> [UInt8] {
        let length = UInt32(body.count)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + body
    }

    /// A reply frame's content.
    struct Reply: Sendable, CustomStringConvertible {
        let ok: Bool?
        let error: String?
        let text: String
        var description: String { text }
    }

    /// The next reply, or nil when the daemon closed the connection.
    func reply() -> Reply? {
        func read(_ count: Int) -> [UInt8]? {
            var bytes = [UInt8](repeating: 0, count: count)
            var received = 0
            while received < count {
                let n = bytes.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress! + received, count - received, 0) }
                guard n > 0 else { return nil }
                received += n
            }
            return bytes
        }
        guard let header = read(4) else { return nil }
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        guard let body = read(length) else { return nil }
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        return Reply(ok: object?["ok"] as? Bool, error: object?["error"] as? String, text: String(decoding: body, as: UTF8.self))
    }
}

@Suite("osmose-journald end to end", .serialized)
struct JournalDaemonTests {
    let bin = builtExecutablesDirectory()

    struct Setup {
        let database: TestDatabase
        let directory: String
        let config: String
        let socketPath: String
        let vkey: String
    }

    /// Runs `body` with ``prepare(_:peerUID:batchSize:)``'s set-up; the database is dropped on every path.
    func withSetup<Result>(_ name: String, peerUID: UInt32 = getuid(), batchSize: Int = 5000, _ body: (Setup) async throws -> Result) async throws -> Result {
        try await withResource(try await prepare(name, peerUID: peerUID, batchSize: batchSize), release: { await $0.database.drop() }, body)
    }

    /// A migrated database, a signing key, and a configuration allowing `peerUID` on the socket.
    func prepare(_ name: String, peerUID: UInt32 = getuid(), batchSize: Int = 5000) async throws -> Setup {
        let database = try await TestDatabase.create(name)
        let directory = "/tmp/osmose-jd-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let osmosectl = bin.appendingPathComponent("osmosectl").path
        #expect(try await runProgram(osmosectl, ["db", "migrate", "--database", database.connectionString]).status == 0)
        let keygen = try await runProgram(osmosectl, ["journal", "keygen", "--origin", "journal.e2e.example", "--out", "\(directory)/signing.key"])
        #expect(keygen.status == 0, "\(keygen.standardError)")
        let config = "\(directory)/osmose.yaml"
        try """
            database:
              connection: "\(database.connectionString)"
            journal:
              origin: journal.e2e.example
              database: "\(database.connectionString) user=osmose_journald"
              signing_key_file: \(directory)/signing.key
              checkpoint_within: 200ms
              batch_size: \(batchSize)
              witness_directories: [\(directory)/witness-a, \(directory)/witness-b]
              socket: unix:\(directory)/direct.sock
              socket_peers:
                - uid: \(peerUID)
                  source: osmose-e2e
              max_frame_bytes: 4096
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let vkey = keygen.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
        // The key recorded in the keyring beforehand, as on an installed system, so that these
        // tests count only their own entries (the first start's adoption event is tested in
        // SigningRolloverTests).
        let admin = try await Connection.connect(database.connectionString, logger: testLogger)
        _ = try await admin.query("SELECT keys.adopt_signing_key($1, $2)", [vkey, String(vkey.split(separator: "+")[1])])
        await admin.close()
        return Setup(database: database, directory: directory, config: config, socketPath: "\(directory)/intake.sock", vkey: vkey)
    }

    func osmosectl(_ setup: Setup, _ arguments: [String]) async throws -> ProcessOutcome {
        try await runProgram(bin.appendingPathComponent("osmosectl").path, arguments + ["--config", setup.config])
    }

    @Test("Socket-activated: valid events are journaled; random bytes, truncated, oversized, unknown fields and a refused uid get an error reply and change nothing")
    func intakeSocket() async throws {
        try await withSetup("jdsocket") { setup in
            let notify = try DatagramSocket()
            let daemon = try BackgroundProcess(
                "/usr/bin/systemd-socket-activate",
                ["-l", setup.socketPath, "--fdname=intake", "-E", "NOTIFY_SOCKET=\(notify.address)", bin.appendingPathComponent("osmose-journald").path, "--config", setup.config])
            // The socket file appears at bind(), before listen(): wait until a connection is accepted.
            try await waitUntil("the activation socket") { (try? IntakeClient(path: setup.socketPath)) != nil }
            let valid = #"{"request_id":"ok-%d","action":"export","object_type":"backup","object_id":"b-1","result":"success","client_ip":"::1"}"#
            @Sendable func submitValid(_ number: Int) throws -> IntakeClient.Reply? {
                let client = try IntakeClient(path: setup.socketPath)
                client.send(json: String(format: valid, number))
                return client.reply()
            }
            let first = try await offThePool { try submitValid(0) }
            #expect(first?.ok == true, "\(String(describing: first))")
            let ready = try await offThePool { [notify] in notify.receive() }
            #expect(ready?.contains("READY=1") == true)

            var random = TestSeed.generator(test: "JournalDaemonTests.intakeSocket")
            let badInputs: [(String, [UInt8], Bool, String)] = [
                ("random bytes", (0..<600).map { _ in UInt8.random(in: 0...255, using: &random) }, false, ""),
                ("truncated frame", Array(IntakeClient.frame(Array(#"{"request_id":"x"}"#.utf8)).prefix(9)), true, "journal.socket.truncated_frame"),
                ("oversized frame", [0, 1, 0, 0] + [UInt8](repeating: 0x20, count: 100), false, "journal.socket.frame_size"),
                ("empty frame", [0, 0, 0, 0], false, "journal.socket.frame_size"),
                ("unknown field", IntakeClient.frame(Array(#"{"request_id":"u","action":"read","object_type":"patient","result":"success","sql":"drop"}"#.utf8)), false, "journal.socket.unknown_field"),
                ("malformed JSON", IntakeClient.frame(Array(#"{"request_id": "#.utf8)), false, "journal.socket.malformed_json"),
                ("wrong type", IntakeClient.frame(Array(#"{"request_id":7,"action":"read","object_type":"patient","result":"success"}"#.utf8)), false, "journal.socket.invalid_field"),
                ("unknown action", IntakeClient.frame(Array(#"{"request_id":"a","action":"peek","object_type":"patient","result":"success"}"#.utf8)), false, "journal.socket.invalid_field"),
                ("bad patient id", IntakeClient.frame(Array(#"{"request_id":"a","action":"read","object_type":"patient","result":"success","patient_id":"x"}"#.utf8)), false, "journal.socket.invalid_field"),
                ("missing result", IntakeClient.frame(Array(#"{"request_id":"a","action":"read","object_type":"patient"}"#.utf8)), false, "journal.socket.missing_field"),
                ("not UTF-8", IntakeClient.frame([0x7B, 0xFF, 0xFE, 0x7D]), false, "journal.socket.malformed_json"),
            ]
            for (index, (name, bytes, halfClose, code)) in badInputs.enumerated() {
                let reply = try await offThePool { () -> IntakeClient.Reply? in
                    let client = try IntakeClient(path: setup.socketPath)
                    client.send(raw: bytes)
                    if halfClose { client.finishWriting() }
                    return client.reply()
                }
                #expect(reply?.ok == false, "\(name): \(String(describing: reply))")
                if !code.isEmpty { #expect(reply?.error == code, "\(name): \(String(describing: reply))") }
                let after = try await offThePool { try submitValid(index + 1) }
                #expect(after?.ok == true, "the daemon keeps serving after \(name)")
            }
            let connection = try await Connection.connect(setup.database.connectionString, logger: testLogger)
            try await waitUntil("the events to be journaled") {
                try await connection.query("SELECT tree_size FROM journal.head").rows[0].int("tree_size") == badInputs.count + 1
            }
            #expect(try await connection.query("SELECT count(*) AS n FROM journal.intake").rows[0].int("n") == 0)
            daemon.signal(SIGTERM)
            _ = try await daemon.wait()

            // The same daemon with an allow-list that does not name this uid refuses it, and records nothing.
            try await withSetup("jdrefused", peerUID: getuid() == 0 ? 65534 : 0) { refusedSetup in
                let refusing = try BackgroundProcess(
                    "/usr/bin/systemd-socket-activate",
                    ["-l", refusedSetup.socketPath, bin.appendingPathComponent("osmose-journald").path, "--config", refusedSetup.config])
                try await waitUntil("the activation socket") { (try? IntakeClient(path: refusedSetup.socketPath)) != nil }
                let refusal = try await offThePool { () -> IntakeClient.Reply? in
                    let client = try IntakeClient(path: refusedSetup.socketPath)
                    client.send(json: String(format: valid, 99))
                    return client.reply()
                }
                #expect(refusal?.error == "journal.socket.peer_not_allowed", "\(String(describing: refusal))")
                let other = try await Connection.connect(refusedSetup.database.connectionString, logger: testLogger)
                #expect(try await other.query("SELECT count(*) AS n FROM journal.intake").rows[0].int("n") == 0)
                #expect(try await other.query("SELECT tree_size FROM journal.head").rows[0].int("tree_size") == 0)
                refusing.signal(SIGTERM)
                _ = try await refusing.wait()
                await connection.close()
                await other.close()
            }
        }
    }

    @Test("Killed with SIGKILL 50 times mid-batch while events stream in: every committed event is journaled exactly once and verify passes", .tags(.crash), .skippedInFastRuns)
    func crashes() async throws {
        // Small batches: most are full, so one is being written while the next is taken
        // on the second connection when the kill comes.
        try await withSetup("jdcrash", batchSize: 64) { setup in
            let seed = TestSeed.current(test: "JournalDaemonTests.crashes")
            var random = SeededGenerator(seed: seed)
            let feederRandom = random.split()
            let feeder = try await Connection.connect(setup.database.connectionString, logger: testLogger)
            let monitor = try await Connection.connect(setup.database.connectionString, logger: testLogger)
            let stop = StopSignal()
            let feeding = Task {
                var random = feederRandom
                var committed = 0
                var number = 0
                while !stop.isSet {
                    let count = Int.random(in: 1...40, using: &random)
                    let events = (0..<count).map { offset in
                        var event = AccessEvent(source: "osmose-care", requestID: "crash-\(number + offset)", action: .read, objectType: "patient", result: .success)
                        event.patientID = UUID.random(using: &random)
                        event.purpose = .care
                        return event
                    }
                    try await feeder.transaction { connection in try connection.record(events) }
                    number += count
                    committed += count
                    try await Task.sleep(for: .milliseconds(Int.random(in: 0...10, using: &random)))
                }
                return committed
            }
            let daemonPath = bin.appendingPathComponent("osmose-journald").path
            let kills = 50
            var landed = 0
            var rounds = 0
            while landed < kills && rounds < 4 * kills {
                rounds += 1
                let notify = try DatagramSocket()
                let daemon = try BackgroundProcess(daemonPath, ["--config", setup.config], environment: ["NOTIFY_SOCKET": notify.address])
                _ = try await offThePool { [notify] in notify.receive() }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...300, using: &random)))
                let inFlight = try await Self.openTransactions(of: "osmose-journald", on: monitor, within: .seconds(3))
                daemon.signal(SIGKILL)
                _ = try await daemon.wait()
                if try await Self.anyUndone(inFlight, on: monitor) { landed += 1 }
            }
            print("JournalDaemonTests.crashes: \(landed) kills undid a batch or checkpoint in flight, in \(rounds) rounds")
            #expect(landed == kills, "kills that undid a batch or checkpoint in flight: \(landed) in \(rounds) rounds (seed \(seed))")
            stop.set()
            let committed = try await feeding.value
            let notify = try DatagramSocket()
            let daemon = try BackgroundProcess(daemonPath, ["--config", setup.config], environment: ["NOTIFY_SOCKET": notify.address])
            _ = try await offThePool { [notify] in notify.receive() }
            try await waitUntil("the backlog to be journaled and checkpointed", timeout: .seconds(120)) {
                try await feeder.query("SELECT (SELECT tree_size FROM journal.head) AS size, (SELECT max(tree_size) FROM journal.checkpoints) AS covered").rows[0].int("covered") == committed
            }
            daemon.signal(SIGTERM)
            #expect(try await daemon.wait().status == 0)

            let rows = try await feeder.query("SELECT canonical FROM journal.entries ORDER BY seq").rows
            let requestIDs = try rows.map { try JournalEntry(canonical: $0.bytes("canonical")).requestID }
            #expect(requestIDs.count == committed)
            #expect(Set(requestIDs).count == committed, "no event twice")
            #expect(Set(requestIDs) == Set((0..<committed).map { "crash-\($0)" }), "every committed event")
            #expect(try await feeder.query("SELECT count(*) AS n FROM journal.intake").rows[0].int("n") == 0)
            let verify = try await osmosectl(setup, ["journal", "verify"])
            #expect(verify.status == 0, "\(verify.standardOutput)\(verify.standardError)")
            #expect(verify.standardOutput.contains("witness notes in 2 directories"))
            await feeder.close()
            await monitor.close()
        }
    }

    /// The transaction ids of `program`'s sessions that are writing now (a batch taken
    /// or being written, a checkpoint), polled until there is one or `within` has passed.
    static func openTransactions(of program: String, on connection: Connection, within: Duration) async throws -> String? {
        let deadline = ContinuousClock.now + within
        repeat {
            let found = try await connection.query(
                "SELECT string_agg(backend_xid::text, ',') AS xids FROM pg_stat_activity WHERE application_name = $1 AND backend_xid IS NOT NULL",
                [program]
            ).rows[0].optionalString("xids")
            if let found { return found }
            try await Task.sleep(for: .milliseconds(1))
        } while ContinuousClock.now < deadline
        return nil
    }

    /// True when one of the transactions `xids` (comma-separated) was rolled back,
    /// once none is in progress any more: the kill undid work in flight.
    static func anyUndone(_ xids: String?, on connection: Connection) async throws -> Bool {
        guard let xids else { return false }
        let query = """
            SELECT count(*) FILTER (WHERE status = 'in progress') AS running, count(*) FILTER (WHERE status = 'aborted') AS aborted
            FROM (SELECT pg_xact_status(xid::xid8) AS status FROM unnest(string_to_array($1, ',')) AS xid) AS transactions
            """
        try await waitUntil("the killed daemon's transactions to end") {
            try await connection.query(query, [xids]).rows[0].int("running") == 0
        }
        return try await connection.query(query, [xids]).rows[0].int("aborted") > 0
    }

    @Test("The security officer's commands: verify, proofs and exports accepted by an independent C2SP implementation; tampering in the database is caught")
    func securityOfficer() async throws {
        try await withSetup("jdofficer") { setup in
            let connection = try await Connection.connect(setup.database.connectionString, logger: testLogger)
            // Fixed ids, the same on every run.
            var generator = SeededGenerator(seed: 700)
            let events = (0..<700).map { index in
                var event = AccessEvent(source: "osmose-care", requestID: "o-\(index)", action: index % 5 == 0 ? .update : .read, objectType: "patient", result: .success)
                event.patientID = index % 100 == 0 ? UUID(uuidString: "7f3c1e2a-9b8d-4c6e-a5f4-0123456789ab")! : UUID.random(using: &generator)
                event.actorTeam = index % 2 == 0 ? "sau" : "epl"
                event.purpose = .care
                return event
            }
            try await connection.transaction { connection in try connection.record(Array(events.prefix(300))) }
            let notify = try DatagramSocket()
            let daemon = try BackgroundProcess(bin.appendingPathComponent("osmose-journald").path, ["--config", setup.config], environment: ["NOTIFY_SOCKET": notify.address])
            _ = try await offThePool { [notify] in notify.receive() }
            try await waitUntil("300 entries checkpointed") {
                try await connection.query("SELECT coalesce(max(tree_size), 0) AS n FROM journal.checkpoints").rows[0].int("n") == 300
            }
            try await connection.transaction { connection in try connection.record(Array(events.suffix(400))) }
            try await waitUntil("700 entries checkpointed") {
                try await connection.query("SELECT coalesce(max(tree_size), 0) AS n FROM journal.checkpoints").rows[0].int("n") == 700
            }
            daemon.signal(SIGTERM)
            _ = try await daemon.wait()

            let verify = try await osmosectl(setup, ["journal", "verify"])
            #expect(verify.status == 0 && verify.standardOutput.contains("journal verified: OK"), "\(verify.standardOutput)\(verify.standardError)")
            let search = try await osmosectl(setup, ["journal", "search", "--patient", "7f3c1e2a-9b8d-4c6e-a5f4-0123456789ab", "--json"])
            let hits = try JSONSerialization.jsonObject(with: Data(search.standardOutput.utf8)) as? [[String: Any]]
            #expect(hits?.count == 7 && hits?.allSatisfy { $0["patientID"] as? String == "7f3c1e2a-9b8d-4c6e-a5f4-0123456789ab" } == true)
            let updates = try await osmosectl(setup, ["journal", "search", "--action", "update", "--team", "sau", "--json"])
            #expect((try JSONSerialization.jsonObject(with: Data(updates.standardOutput.utf8)) as? [Any])?.count == 70)

            let checkpoints = try await connection.query("SELECT id, tree_size FROM journal.checkpoints ORDER BY id").rows
            let old = try checkpoints.first { try $0.int("tree_size") == 300 }!.int64("id")
            let new = try checkpoints.last!.int64("id")
            let files = setup.directory
            try (try await osmosectl(setup, ["journal", "checkpoint", "--id", "\(old)"])).standardOutput.write(toFile: "\(files)/old", atomically: true, encoding: .utf8)
            try (try await osmosectl(setup, ["journal", "prove", "inclusion", "456"])).standardOutput.write(toFile: "\(files)/proof", atomically: true, encoding: .utf8)
            try (try await osmosectl(setup, ["journal", "prove", "consistency", "\(old)", "\(new)"])).standardOutput.write(toFile: "\(files)/consistency", atomically: true, encoding: .utf8)
            #expect(try await osmosectl(setup, ["journal", "tiles", "--out", "\(files)/tiles"]).status == 0)
            #expect(try await osmosectl(setup, ["journal", "export", "--from", "250", "--to", "320", "--out", "\(files)/export"]).status == 0)
            let interop = try await runProgram(
                "/usr/bin/env",
                [
                    "python3", repositoryRoot.appendingPathComponent("scripts/interop/verify-c2sp.py").path, "--vkey", setup.vkey, "--tiles", "\(files)/tiles",
                    "--proof", "\(files)/proof", "--consistency", "\(files)/consistency", "--old-checkpoint", "\(files)/old", "--export", "\(files)/export",
                ])
            #expect(interop.status == 0, "\(interop.standardOutput)\(interop.standardError)")
            #expect(interop.standardOutput.components(separatedBy: "\nok ").count == 4, "\(interop.standardOutput)")
            let fhir = try await osmosectl(setup, ["journal", "export", "--from", "0", "--to", "9", "--format", "fhir"])
            let bundle = try JSONSerialization.jsonObject(with: Data(fhir.standardOutput.utf8)) as? [String: Any]
            #expect(bundle?["resourceType"] as? String == "Bundle" && (bundle?["entry"] as? [Any])?.count == 10)

            // Several proofs in one run, scattered exports (from a file, and a patient's), a consistency chain:
            // each accepted by the independent verifier.
            let many = try await osmosectl(setup, ["journal", "prove", "inclusion", "699", "3", "456", "257"])
            let texts = many.standardOutput.components(separatedBy: "--\n")
            #expect(many.status == 0 && texts.count == 4, "\(many.standardOutput)\(many.standardError)")
            for (position, text) in texts.enumerated() {
                #expect(text.contains("\nindex \([3, 257, 456, 699][position])\n"), "proofs come in sequence order")
                try text.write(toFile: "\(files)/proof-\(position)", atomically: true, encoding: .utf8)
                let checked = try await runProgram(
                    "/usr/bin/env",
                    [
                        "python3", repositoryRoot.appendingPathComponent("scripts/interop/verify-c2sp.py").path, "--vkey", setup.vkey, "--tiles", "\(files)/tiles",
                        "--proof", "\(files)/proof-\(position)",
                    ])
                #expect(checked.status == 0, "\(checked.standardOutput)\(checked.standardError)")
            }
            try "699\n3\n# a comment\n\n256\n255\n".write(toFile: "\(files)/sequences", atomically: true, encoding: .utf8)
            let scattered = try await osmosectl(setup, ["journal", "export", "--sequences-file", "\(files)/sequences", "--out", "\(files)/scattered"])
            #expect(scattered.status == 0 && scattered.standardOutput.contains("exported 4 entries"), "\(scattered.standardOutput)\(scattered.standardError)")
            let patient = try await osmosectl(setup, ["journal", "export", "--patient", "7f3c1e2a-9b8d-4c6e-a5f4-0123456789ab", "--out", "\(files)/patient"])
            #expect(patient.status == 0 && patient.standardOutput.contains("exported 7 entries"), "\(patient.standardOutput)\(patient.standardError)")
            for export in ["scattered", "patient"] {
                let checked = try await runProgram(
                    "/usr/bin/env",
                    [
                        "python3", repositoryRoot.appendingPathComponent("scripts/interop/verify-c2sp.py").path, "--vkey", setup.vkey,
                        "--export", "\(files)/\(export)", "--consistency", "\(files)/\(export)/consistency", "--old-checkpoint", "\(files)/\(export)/checkpoint",
                    ])
                #expect(checked.status == 0 && checked.standardOutput.contains("ok consistency"), "\(export): \(checked.standardOutput)\(checked.standardError)")
            }
            let patientEvents = try await connection.query(
                "SELECT count(*) AS n FROM journal.intake WHERE action = 'export' AND patient_id = '7f3c1e2a-9b8d-4c6e-a5f4-0123456789ab'")
            #expect(try patientEvents.rows[0].int("n") == 1, "the patient's export names the patient")
            let between = try checkpoints.map { try $0.int64("id") }.filter { $0 >= old && $0 <= new }
            let middle = between[between.count / 2]
            let chain = try await osmosectl(setup, ["journal", "prove", "consistency", "\(old)", "\(middle)", "\(new)"])
            let bodies = chain.standardOutput.components(separatedBy: "--\n")
            #expect(chain.status == 0 && bodies.count == 2, "\(chain.standardOutput)\(chain.standardError)")
            try (try await osmosectl(setup, ["journal", "checkpoint", "--id", "\(middle)"])).standardOutput.write(toFile: "\(files)/middle", atomically: true, encoding: .utf8)
            for (body, from) in zip(bodies, ["old", "middle"]) {
                try body.write(toFile: "\(files)/link", atomically: true, encoding: .utf8)
                let checked = try await runProgram(
                    "/usr/bin/env",
                    [
                        "python3", repositoryRoot.appendingPathComponent("scripts/interop/verify-c2sp.py").path, "--vkey", setup.vkey,
                        "--consistency", "\(files)/link", "--old-checkpoint", "\(files)/\(from)",
                    ])
                #expect(checked.status == 0, "\(from): \(checked.standardOutput)\(checked.standardError)")
            }
            let refused = try await osmosectl(setup, ["journal", "export", "--seq", "3,9999", "--out", "\(files)/refused"])
            #expect(refused.status != 0 && refused.standardError.contains("9999"), "\(refused.standardError)")

            // Tampering as the database owner, with the append-only triggers switched off.
            let owner = try await Connection.connect(setup.database.connectionString, logger: testLogger)
            try await owner.execute("SET session_replication_role = replica")
            let original = try await owner.query("SELECT canonical FROM journal.entries WHERE seq = 123").rows[0].bytes("canonical")
            try await owner.execute("UPDATE journal.entries SET canonical = overlay(canonical placing '\\x41'::bytea from 40 for 1) WHERE seq = 123")
            let tampered = try await osmosectl(setup, ["journal", "verify"])
            #expect(tampered.status == 5 && tampered.standardError.contains("first bad sequence number: 123"), "\(tampered.standardOutput)\(tampered.standardError)")
            try await owner.query("UPDATE journal.entries SET canonical = (SELECT canonical FROM journal.entries WHERE seq = 124) WHERE seq = 123")
            let copied = try await osmosectl(setup, ["journal", "verify"])
            #expect(copied.status == 5 && copied.standardError.contains("first bad sequence number: 123"), "\(copied.standardOutput)")
            try await owner.query("UPDATE journal.entries SET canonical = $1 WHERE seq = 123", [original])
            #expect(try await osmosectl(setup, ["journal", "verify"]).status == 0, "restored, the journal verifies again")
            // Search columns are not hashed but must say what the bytes say: a changed UUID
            // column and a changed text column are each caught where they lie.
            try await owner.execute("CREATE TEMP TABLE saved AS SELECT seq, patient_id, actor_team FROM journal.entries WHERE seq = 200")
            for change in [
                "patient_id = CASE WHEN patient_id IS NULL THEN gen_random_uuid() ELSE NULL END",
                "patient_id = gen_random_uuid()", "actor_team = coalesce(actor_team, '') || 'x'",
            ] {
                try await owner.execute("UPDATE journal.entries SET \(change) WHERE seq = 200")
                let moved = try await osmosectl(setup, ["journal", "verify"])
                #expect(
                    moved.status == 5 && moved.standardError.contains("first bad sequence number: 200") && moved.standardOutput.contains("search_columns"),
                    "\(change): \(moved.standardOutput)\(moved.standardError)")
                try await owner.execute("UPDATE journal.entries AS e SET patient_id = s.patient_id, actor_team = s.actor_team FROM saved AS s WHERE e.seq = s.seq")
            }
            #expect(try await osmosectl(setup, ["journal", "verify"]).status == 0, "restored, the journal verifies again")
            // A rollback to the first checkpoint, self-consistent in the database: only the witnesses can tell.
            try await owner.execute("DELETE FROM journal.entries WHERE seq >= 300")
            try await owner.execute("DELETE FROM journal.checkpoints WHERE tree_size > 300")
            try await owner.execute("DELETE FROM journal.tiles WHERE level = 0 AND tile_index >= 1")
            try await owner.execute(
                "UPDATE journal.head SET tree_size = 300, chain_hash = (SELECT chain_hash FROM journal.entries WHERE seq = 299), checkpoints = (SELECT max(id) FROM journal.checkpoints)")
            let inDatabaseOnly = try await osmosectl(setup, ["journal", "verify", "--no-witnesses"])
            #expect(inDatabaseOnly.status == 0, "without its witnesses a rolled-back database looks whole: \(inDatabaseOnly.standardOutput)")
            let rolledBack = try await osmosectl(setup, ["journal", "verify"])
            #expect(rolledBack.status == 5 && rolledBack.standardOutput.contains("witness_unknown_checkpoint"), "a rolled-back database is caught by its witnesses: \(rolledBack.standardOutput)")
            let restart = try await runProgram(bin.appendingPathComponent("osmose-journald").path, ["--config", setup.config])
            #expect(restart.status == 5 && restart.standardError.contains("journal.witness"), "the daemon refuses to run on a rolled-back database: \(restart.standardError)")
            await owner.close()
            await connection.close()
        }
    }
}

/// Set once to stop a background loop.
final class StopSignal: Sendable {
    private let flag = Locked(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}
