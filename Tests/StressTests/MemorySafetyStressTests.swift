import Age
import CareRecords
import Foundation
import Glibc
import Journal
import Keyring
import Store
import Testing
import TestSupport

/// The paths that handle raw memory (libpq results and COPY buffers, OpenSSL
/// contexts, libarchive blocks, the intake socket's threads, the journal
/// verifier's second thread), run many times and side by side, so that a
/// sanitizer build (`scripts/test --sanitize address|thread`) sees them under
/// contention. Every round runs, at the same time and through the built
/// executables (sanitized with the suite): journal exports near the tree's right
/// edge and in its middle, verify, search, tiles, inclusion and consistency
/// proofs; many intake-socket clients of osmose-journald; backup verify
/// `--read-data` and a restore; a column-key rotation worked through by
/// osmose-keyd in small batches; and, in this process, binary and text COPY in
/// and out, and a verification that streams the journal through its second thread.
///
/// It runs in the sanitizer passes (`scripts/test --sanitize …` sets
/// `OSMOSE_TEST_SANITIZER`) and whenever `OSMOSE_STRESS_ITERATIONS` is set, which
/// sets the rounds (default 5); not in the plain suite CI runs, whose time it would
/// double. `OSMOSE_STRESS_MINUTES` bounds the whole test (default 30). The seed is
/// printed; `OSMOSE_TEST_SEED` replays a run.
@Suite("Memory safety under load", .serialized)
struct MemorySafetyStressTests {
    static let iterations = ProcessInfo.processInfo.environment["OSMOSE_STRESS_ITERATIONS"].flatMap { Int($0) } ?? 5
    static let minutes = ProcessInfo.processInfo.environment["OSMOSE_STRESS_MINUTES"].flatMap { Int($0) } ?? 30
    /// True in a sanitizer pass or when the rounds are asked for explicitly.
    static let requested = ["OSMOSE_TEST_SANITIZER", "OSMOSE_STRESS_ITERATIONS"].contains {
        !(ProcessInfo.processInfo.environment[$0] ?? "").isEmpty
    }
    /// Entries in the journal before the rounds start: more than 65,536, so that the
    /// tree has a full tile at level 1 as well as partial tiles at both levels.
    static let journalSize = 66_000

    @Test(
        "Exports, verify, search, tiles, proofs, intake clients, backup verify and restore, key rotation and COPY, side by side, round after round",
        .tags(.stress), .skippedInFastRuns,
        .enabled(if: requested, "runs under scripts/test --sanitize, or with OSMOSE_STRESS_ITERATIONS set"),
        .timeLimit(.minutes(minutes)))
    func unsafePathsSideBySide() async throws {
        var random = TestSeed.generator(test: "MemorySafetyStressTests.unsafePathsSideBySide")
        let seed = random.seed
        try await StressSite.with { site in
            let started = ContinuousClock.now
            var completed = 0
            for round in 1...Self.iterations {
                let failures = try await site.round(round, random: random.split())
                #expect(failures.isEmpty, "round \(round) (seed \(seed)): \(failures.joined(separator: "\n"))")
                guard failures.isEmpty else { break }
                completed = round
            }
            print("memory-safety stress: \(completed) of \(Self.iterations) rounds passed in \(ContinuousClock.now - started) (seed \(seed))")
            try await site.finish()
        }
    }
}

/// A cluster of its own with the whole suite configured on it: a journal of
/// ``MemorySafetyStressTests/journalSize`` entries sequenced by a running
/// osmose-journald, a keyring with patients, a full backup and archived WAL.
struct StressSite: Sendable {
    let cluster: TestCluster
    let directory: String
    let config: String
    let daemon: BackgroundProcess
    let admin: Connection
    let verifierKey: NoteVerifierKey
    let bin = builtExecutablesDirectory()

    var socketPath: String { directory + "/intake.sock" }
    func executable(_ name: String) -> String { bin.appendingPathComponent(name).path }

    /// Sets the site up, runs `body`, and takes everything down on every path.
    static func with(_ body: (StressSite) async throws -> Void) async throws {
        try await TestCluster.with("stress") { cluster in
            let site = try await make(cluster)
            do {
                try await body(site)
                await site.close()
            } catch {
                await site.close()
                throw error
            }
        }
    }

    static func make(_ cluster: TestCluster) async throws -> StressSite {
        let bin = builtExecutablesDirectory()
        let osmosectl = bin.appendingPathComponent("osmosectl").path
        let directory = cluster.directory
        let config = "\(directory)/osmose.yaml"
        let database = cluster.connectionString(database: "osmose")
        let identity = try AgeIdentity.generate()
        try identity.exposedFile(created: "stress test").write(toFile: "\(directory)/identity.txt", atomically: true, encoding: .utf8)
        chmod("\(directory)/identity.txt", 0o600)
        let master = try MasterKey.generate()
        _ = FileManager.default.createFile(atPath: "\(directory)/master.key", contents: Data(master.exposedBytes()), attributes: [.posixPermissions: 0o600])
        // osmose-backupd signs every backup and WAL file it stores (issue 21), with this key.
        let backupSigner = try NoteSignerKey.generate(name: "stress.osmose.example/backup")
        _ = FileManager.default.createFile(
            atPath: "\(directory)/backup-signing.key", contents: Data((backupSigner.exposedEncoding() + "\n").utf8), attributes: [.posixPermissions: 0o600])
        try """
            cryptoperiods:
              column: 365
              blind_index: 365
              pseudonymisation: 730
            rotation:
              max_values_per_second: 100000
              batch_size: 40
            """.write(toFile: "\(directory)/keys.yaml", atomically: true, encoding: .utf8)
        try """
            database:
              connection: "\(database)"
            logging:
              level: warning
            paths:
              policies: \(repositoryRoot.path)/policies
            journal:
              origin: journal.stress.example
              database: "\(cluster.connectionString(database: "osmose", user: "osmose_journald"))"
              signing_key_file: \(directory)/signing.key
              checkpoint_within: 200ms
              batch_size: 5000
              witness_directories: [\(directory)/witness]
              socket: unix:\(directory)/intake.sock
              socket_peers:
                - uid: \(getuid())
                  source: osmose-stress
              max_frame_bytes: 4096
            keys:
              database: "\(cluster.connectionString(database: "osmose", user: "osmose_keyd"))"
              master_key_file: \(directory)/master.key
              policy: \(directory)/keys.yaml
            backup:
              store: \(directory)/store
              recipients: ["\(identity.recipient.encoded)"]
              identity_file: \(directory)/identity.txt
              signing_key_files: [\(directory)/backup-signing.key]
              verifier_keys: ["\(backupSigner.verifierKey.encoded)"]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: "\(directory)/store", withIntermediateDirectories: true)
        try cluster.appendSettings("""
            archive_mode = on
            archive_command = '\(bin.appendingPathComponent("osmose-backupd").path) wal-push --config \(config) %p %f'
            """)
        try TestCluster.giveToOwner(directory)
        try await cluster.start()

        let server = try await Connection.connect(cluster.connectionString(), logger: testLogger)
        try await server.execute("CREATE DATABASE osmose")
        await server.close()
        try Self.require(try await runProgram(osmosectl, ["db", "migrate", "--config", config]), "db migrate")
        let keygen = try await runProgram(osmosectl, ["journal", "keygen", "--origin", "journal.stress.example", "--out", "\(directory)/signing.key"])
        try Self.require(keygen, "journal keygen")
        let verifierKey = try NoteVerifierKey(encoded: keygen.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines))

        let admin = try await Connection.connect(database, logger: testLogger)
        do {
            try await Self.seedPatients(200, master: master, on: admin)
            // The bulk of the journal straight into the intake; the rounds add more through the socket.
            try await admin.execute(
                """
                INSERT INTO journal.intake (occurred_at, source, request_id, actor_user_id, actor_username, actor_role, actor_team, action,
                    object_type, object_id, patient_id, purpose, result, client_ip, user_agent)
                SELECT clock_timestamp(), 'osmose-care', md5(g::text), md5('staff ' || (g % 200))::uuid, 'agent.' || (g % 200), 'agent',
                    CASE WHEN g % 2 = 0 THEN 'sau' ELSE 'epl' END, CASE WHEN g % 9 = 0 THEN 'update' ELSE 'read' END, 'episode',
                    md5('object ' || g), md5('patient ' || (g % 5000))::uuid, 'care', 'success', '10.20.0.1', 'stress'
                FROM generate_series(1, \(MemorySafetyStressTests.journalSize)) AS g
                """)
            // osmose-backupd full, run as the cluster's owner, copies the witness directory that
            // osmose-journald (root here) keeps rewriting, and writes the store's head there: the
            // owner reads and writes it through its group (a one-off chown raced with the next note).
            try TestCluster.shareWithOwnerGroup("\(directory)/witness")
            let daemon = try BackgroundProcess(bin.appendingPathComponent("osmose-journald").path, ["--config", config])
            let site = StressSite(cluster: cluster, directory: directory, config: config, daemon: daemon, admin: admin, verifierKey: verifierKey)
            try await waitUntil("the seeded journal to be sequenced and signed", timeout: .seconds(600)) {
                try await site.coveredSize() >= UInt64(MemorySafetyStressTests.journalSize)
            }
            let full = try await cluster.asOwner([bin.appendingPathComponent("osmose-backupd").path, "full", "--config", config])
            try Self.require(full, "osmose-backupd full")
            return site
        } catch {
            await admin.close()
            throw error
        }
    }

    /// A team, a user and `count` patients written through the care store (four
    /// encrypted identity columns each, every third with an INS), for the rotations.
    static func seedPatients(_ count: Int, master: MasterKey, on admin: Connection) async throws {
        try await DataKeyRing.initialise(on: admin, master: master, createdBy: "stress test")
        let ring = try await DataKeyRing.load(on: admin, master: master)
        let (team, user) = (UUID(), UUID())
        try await admin.transaction { connection in
            try connection.query("INSERT INTO care.teams (id, code, name) VALUES ($1, 'sau', 'Urgences')", [team])
            try connection.query(
                "INSERT INTO care.users (id, username, display_name, role, team_id, password_hash) VALUES ($1, 'agent.sau', 'Agent', 'agent', $2, 'x')",
                [user, team])
        }
        let principal = Principal(userID: user, username: "agent.sau", role: .agent, teamID: team, teamCode: "sau")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let inputs = try (0..<count).map { index in
            var fields = ["last_name": "Nom-\(Self.letters(index))", "first_name": "Prénom", "birth_date": "1980-01-\(String(format: "%02d", index % 28 + 1))", "sex": "female"]
            if index % 3 == 0 {
                let number = 2_800_175_000_000 + index
                fields["ins"] = "\(number)\(String(format: "%02d", 97 - number % 97))"
            }
            return try decoder.decode(PatientInput.self, from: JSONEncoder().encode(fields))
        }
        try await admin.transaction { connection in
            for input in inputs { _ = try CareStore(ring: ring).createPatient(input, by: principal, on: connection) }
        }
    }

    /// `index` spelled in letters (names may hold no digits).
    static func letters(_ index: Int) -> String {
        var text = "", rest = index
        repeat {
            text.append(Character(UnicodeScalar(UInt8(97 + rest % 26))))
            rest /= 26
        } while rest > 0
        return text
    }

    static func require(_ outcome: ProcessOutcome, _ what: String) throws {
        guard outcome.status == 0 else { throw TestEnvironmentError("\(what) failed (\(outcome.status)): \(outcome.standardOutput)\(outcome.standardError)") }
    }

    /// The size of the newest checkpoint's tree.
    func coveredSize() async throws -> UInt64 {
        UInt64(try await admin.query("SELECT coalesce(max(tree_size), 0) AS n FROM journal.checkpoints").rows[0].int64("n"))
    }

    func osmosectl(_ arguments: [String]) async throws -> ProcessOutcome {
        try await runProgram(executable("osmosectl"), arguments + ["--config", config])
    }

    /// One round: every workload at once. Returns what went wrong, one line each.
    func round(_ round: Int, random: SeededGenerator) async throws -> [String] {
        var random = random
        let covered = try await coveredSize()
        let checkpoints = try await admin.query("SELECT id FROM journal.checkpoints ORDER BY id").rows.map { try $0.int64("id") }
        let scratch = "\(directory)/round-\(round)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        // The right edge: the last covered entries, where proofs read partial tiles and entries.
        let edgeLast = covered - 1 - UInt64.random(in: 0..<20, using: &random)
        let edge = (edgeLast - UInt64.random(in: 0..<300, using: &random))...edgeLast
        let middleFirst = UInt64.random(in: 0..<(covered - 400), using: &random)
        let middle = middleFirst...(middleFirst + UInt64.random(in: 0..<300, using: &random))
        let since = checkpoints.randomElement(using: &random)!
        let older = checkpoints.randomElement(using: &random)!
        let newer = checkpoints.filter { $0 >= older }.randomElement(using: &random)!
        let inclusion = UInt64.random(in: 0..<covered, using: &random)
        let fullVerify = round % 10 == 1
        let copySeed = random.next()
        let clients = 24
        let eventsPerClient = 5

        typealias Work = @Sendable () async throws -> String?
        func checked(_ what: String, _ arguments: [String], expect: (@Sendable (String) -> Bool)? = nil) -> Work {
            { [self] in
                let outcome = try await osmosectl(arguments)
                guard outcome.status == 0 else {
                    // Failures are listed on standard output (verify's FAIL lines), the summary on standard error.
                    return "\(what): exit \(outcome.status): \(outcome.standardOutput.suffix(4000))\(outcome.standardError.suffix(4000))"
                }
                if let expect, !expect(outcome.standardOutput) { return "\(what): unexpected output: \(outcome.standardOutput.suffix(2000))" }
                return nil
            }
        }
        let work: [(String, Work)] = [
            ("export near the right edge", checked("export \(edge)", ["journal", "export", "--from", "\(edge.lowerBound)", "--to", "\(edge.upperBound)", "--out", "\(scratch)/edge"]) {
                $0.contains("exported \(edge.count) entries (\(edge.lowerBound)-\(edge.upperBound))")
            }),
            ("export in the middle", checked("export \(middle)", ["journal", "export", "--from", "\(middle.lowerBound)", "--to", "\(middle.upperBound)", "--out", "\(scratch)/middle"]) {
                $0.contains("exported \(middle.count) entries (\(middle.lowerBound)-\(middle.upperBound))")
            }),
            ("verify", checked("verify\(fullVerify ? "" : " --since \(since)")", ["journal", "verify"] + (fullVerify ? [] : ["--since", "\(since)"])) {
                $0.contains("journal verified: OK")
            }),
            ("search", checked("search", ["journal", "search", "--team", "sau", "--action", "update", "--limit", "500", "--json"])),
            ("tiles", checked("tiles", ["journal", "tiles", "--out", "\(scratch)/tiles"])),
            ("inclusion proof", checked("prove inclusion \(inclusion)", ["journal", "prove", "inclusion", "\(inclusion)"]) { $0.hasPrefix("c2sp.org/tlog-proof@v1") }),
            ("consistency proof", checked("prove consistency \(older) \(newer)", ["journal", "prove", "consistency", "\(older)", "\(newer)"])),
            ("backup verify --read-data", checked("backup verify", ["backup", "verify", "--all", "--read-data"]) { $0.contains("backups verified: OK") }),
            ("restore", checked("backup restore", ["backup", "restore", "--to", "latest", "--target", "\(scratch)/restored"])),
            ("key rotation", { [self] in try await rotateColumnKey(round) }),
            ("intake clients", { [self] in try await intakeClients(clients, events: eventsPerClient, round: round) }),
            ("COPY in and out", { [self] in try await copyRoundTrip(seed: copySeed, round: round) }),
            ("in-process verify", { [self] in try await verifyInProcess(since: since) }),
        ]
        return try await withThrowingTaskGroup(of: String?.self) { group in
            for (name, body) in work {
                group.addTask {
                    do {
                        return try await body()
                    } catch {
                        return "\(name): \(error)"
                    }
                }
            }
            var failures: [String] = []
            for try await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
    }

    /// `osmosectl keys rotate` then osmose-keyd, which re-encrypts every value in batches of 40.
    func rotateColumnKey(_ round: Int) async throws -> String? {
        let rotate = try await osmosectl(["keys", "rotate", "--purpose", "column", "--reason", "stress round \(round)", "--master-key", "\(directory)/master.key"])
        guard rotate.status == 0 else { return "keys rotate: exit \(rotate.status): \(rotate.standardError)" }
        let keyd = try await runProgram(executable("osmose-keyd"), ["--config", config])
        guard keyd.status == 0 else { return "osmose-keyd: exit \(keyd.status): \(keyd.standardError.suffix(4000))" }
        let unfinished = try await admin.query("SELECT count(*) AS n FROM keys.rotations WHERE state <> 'finished'").rows[0].int("n")
        return unfinished == 0 ? nil : "osmose-keyd left \(unfinished) rotations unfinished"
    }

    /// `count` clients connect at once, each submitting `events` events and reading each
    /// reply; a "busy" refusal (more clients than the daemon serves at once) is allowed
    /// and retried, anything else is a failure.
    func intakeClients(_ count: Int, events: Int, round: Int) async throws -> String? {
        let path = socketPath
        let failures = try await withThrowingTaskGroup(of: String?.self) { group in
            for client in 0..<count {
                group.addTask {
                    try await offThePool {
                        for event in 0..<events {
                            let body = #"{"request_id":"stress-\#(round)-\#(client)-\#(event)","action":"export","object_type":"backup","object_id":"b-\#(round)","result":"success","client_ip":"::1"}"#
                            var attempts = 0
                            while true {
                                attempts += 1
                                let reply = try StressIntakeClient.submit(body, to: path)
                                if reply.contains("\"ok\":true") { break }
                                // Over the uid's share of the daemon's slots (a quarter of 32) a client is
                                // told busy: it retries, as the reply asks, for at most 30 s.
                                guard reply.contains("journal.socket.busy"), attempts < 1_500 else {
                                    return "client \(client), event \(event), after \(attempts) attempts: \(reply)"
                                }
                                usleep(20_000)
                            }
                        }
                        return nil
                    }
                }
            }
            var failures: [String] = []
            for try await failure in group { if let failure { failures.append(failure) } }
            return failures
        }
        return failures.isEmpty ? nil : "intake: \(failures.joined(separator: "; "))"
    }

    /// Random rows (bytea up to 64 KiB, text with tabs, newlines and non-ASCII, NULLs)
    /// copied in, in binary and in text, then copied out in both forms and compared.
    func copyRoundTrip(seed: UInt64, round: Int) async throws -> String? {
        var random = SeededGenerator(seed: seed)
        struct Row: Equatable, Sendable {
            let id: Int64
            let label: String?
            let payload: [UInt8]?
            let reference: UUID?
        }
        let base = Int64(round) * 1_000_000
        var rows: [Row] = []
        for index in 0..<Int.random(in: 200..<800, using: &random) {
            let padding = String(repeating: "x", count: Int.random(in: 0..<300, using: &random))
            let label: String? = index % 7 == 0 ? nil : "ligne \(index)\t«é»\n\\" + padding
            let payloadSize = Int.random(in: 0..<(index % 50 == 0 ? 65_536 : 512), using: &random)
            let payload: [UInt8]? = index % 11 == 0 ? nil : random.bytes(count: payloadSize)
            let reference: UUID? = index % 5 == 0 ? nil : UUID.random(using: &random)
            rows.append(Row(id: base + Int64(index), label: label, payload: payload, reference: reference))
        }
        let half = rows.count / 2
        let (binaryRows, textRows) = (Array(rows[..<half]), Array(rows[half...]))
        let back = try await admin.transaction { connection -> [Row] in
            try connection.execute("CREATE TABLE IF NOT EXISTS public.stress_copy (id int8 PRIMARY KEY, label text, payload bytea, reference uuid)")
            try connection.copyIn("COPY public.stress_copy (id, label, payload, reference) FROM STDIN (FORMAT binary)") { writer in
                var encoder = BinaryCopyEncoder()
                for row in binaryRows {
                    encoder.beginRow(fields: 4)
                    encoder.int64(row.id)
                    encoder.text(row.label)
                    if let payload = row.payload { encoder.bytea(payload) } else { encoder.null() }
                    try encoder.uuid(row.reference?.uuidString)
                }
                encoder.finish()
                try writer.write(encoder.bytes)
            }
            try connection.copyIn("COPY public.stress_copy (id, label, payload, reference) FROM STDIN") { writer in
                for row in textRows {
                    try writer.writeRow([row.id, row.label, row.payload, row.reference?.uuidString.lowercased()])
                }
            }
            let decoded = try connection.copyRows(
                "COPY (SELECT id, label, payload, reference FROM public.stress_copy WHERE id >= \(base) AND id < \(base + 1_000_000) ORDER BY id) TO STDOUT (FORMAT binary)")
            var gathered = 0
            try connection.copyOutGathered("COPY (SELECT payload FROM public.stress_copy WHERE id >= \(base) AND id < \(base + 1_000_000)) TO STDOUT", bufferBytes: 4096) {
                gathered += $0.count
            }
            try connection.execute("DELETE FROM public.stress_copy WHERE id >= \(base) AND id < \(base + 1_000_000)")
            guard gathered > 0 else { throw TestEnvironmentError("text COPY out returned nothing") }
            return try decoded.map { row in
                Row(id: try row.int64(0), label: try row.text(1), payload: row.bytes(2), reference: try row.uuid(3).flatMap(UUID.init(uuidString:)))
            }
        }
        return back == rows ? nil : "COPY: \(rows.count) rows in, \(back.count) out, contents differ"
    }

    /// A verification in this process, from checkpoint `since`: the journal streams
    /// through `DatabaseSnapshot`'s second thread while the connection's thread receives it.
    func verifyInProcess(since: Int64) async throws -> String? {
        let key = verifierKey
        let report = try await admin.transaction(isolation: .repeatableRead) { connection in
            try JournalVerifier(key: key, now: Int64(Date().timeIntervalSince1970 * 1_000_000)).verify(DatabaseSnapshot(connection: connection), since: since)
        }
        return report.passed ? nil : "in-process verify: \(report.failures)"
    }

    /// Checks that the daemon is still running, then verifies the whole journal once more.
    func finish() async throws {
        let verify = try await osmosectl(["journal", "verify"])
        #expect(verify.status == 0 && verify.standardOutput.contains("journal verified: OK"), "\(verify.standardOutput)\(verify.standardError)")
        #expect(kill(daemon.pid, 0) == 0, "osmose-journald is still running")
    }

    func close() async {
        daemon.signal(SIGTERM)
        if let outcome = try? await daemon.wait(), outcome.status != 0 {
            Issue.record("osmose-journald ended with \(outcome.status): \(outcome.standardError.suffix(4000))")
        }
        await admin.close()
    }
}

/// One connection of the intake socket's framed JSON protocol.
enum StressIntakeClient {
    /// Connects, sends `json` as one frame, and returns the reply frame's text.
    static func submit(_ json: String, to path: String) throws -> String {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestEnvironmentError("socket(): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw TestEnvironmentError("cannot connect to \(path): \(String(cString: strerror(errno)))") }
        let body = Array(json.utf8)
        let length = UInt32(body.count)
        let frame = [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + body
        var sent = 0
        var sendError: String?
        while sent < frame.count {
            let count = frame.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + sent, frame.count - sent, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else {
                // The daemon may answer "busy" and close before reading the frame (a uid over
                // its share of the slots): its reply is still there to read.
                sendError = "send: \(String(cString: strerror(errno)))"
                break
            }
            sent += count
        }
        func read(_ count: Int) throws -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: count)
            var received = 0
            while received < count {
                let got = bytes.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress! + received, count - received, 0) }
                guard got > 0 else { throw TestEnvironmentError("the daemon closed the connection before replying") }
                received += got
            }
            return bytes
        }
        do {
            let header = try read(4)
            let replyLength = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
            return String(decoding: try read(replyLength), as: UTF8.self)
        } catch {
            throw sendError.map { TestEnvironmentError("\($0), and no reply") } ?? error
        }
    }
}
