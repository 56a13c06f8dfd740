import Foundation
import Journal
import JournalService
import Testing

@Suite("Checkpoint schedule")
struct CheckpointScheduleTests {
    let start = ContinuousClock.now

    @Test("A journal without checkpoints gets one at once")
    func first() {
        let schedule = CheckpointSchedule(within: .seconds(1), reissue: .seconds(60), lastCheckpointSize: nil, now: start)
        #expect(schedule.decide(size: 0, now: start) == .issue)
    }

    @Test("Growth is checkpointed within half the promised delay, never more often")
    func growth() {
        var schedule = CheckpointSchedule(within: .seconds(1), reissue: .seconds(60), lastCheckpointSize: 10, now: start)
        #expect(schedule.decide(size: 11, now: start + .milliseconds(100)) == .wait(.milliseconds(400)))
        #expect(schedule.decide(size: 11, now: start + .milliseconds(500)) == .issue)
        schedule.issued(size: 11, at: start + .milliseconds(500))
        #expect(schedule.decide(size: 12, now: start + .milliseconds(600)) == .wait(.milliseconds(400)))
    }

    @Test("An unchanged tree is re-signed at the re-issue interval")
    func reissue() {
        var schedule = CheckpointSchedule(within: .seconds(1), reissue: .seconds(60), lastCheckpointSize: 5, now: start)
        #expect(schedule.decide(size: 5, now: start + .seconds(30)) == .wait(.seconds(30)))
        #expect(schedule.decide(size: 5, now: start + .seconds(60)) == .issue)
        schedule.issued(size: 5, at: start + .seconds(60))
        #expect(schedule.decide(size: 5, now: start + .seconds(61)) == .wait(.seconds(59)))
    }
}

@Suite("Intake socket protocol")
struct IntakeProtocolTests {
    func decode(_ json: String) throws -> AccessEvent { try IntakeProtocol.event(from: Array(json.utf8), source: "osmose-backupd") }

    @Test("A valid request becomes an event recorded under the peer's source, whatever it claims")
    func valid() throws {
        let event = try decode(
            #"{"request_id":"b-1","action":"export","object_type":"backup","object_id":"full-7","result":"success","purpose":"administration","occurred_at":"2026-11-22T04:30:00.123Z","client_ip":"::ffff:10.0.0.1","patient_id":null}"#)
        #expect(event.source == "osmose-backupd" && event.action == .export && event.objectID == "full-7" && event.purpose == .administration)
        #expect(abs(event.occurredAt.timeIntervalSince1970 - 1_795_321_800.123) < 0.001)
        #expect(event.clientIP == "::ffff:10.0.0.1" && event.patientID == nil)
    }

    @Test("Each kind of bad request is refused with its code, naming the field")
    func refusals() {
        let cases: [(String, String)] = [
            ("[]", "journal.socket.malformed_json"),
            ("{", "journal.socket.malformed_json"),
            (#"{"request_id":"a","action":"read","object_type":"patient","result":"success","source":"osmose-care"}"#, "journal.socket.unknown_field"),
            (#"{"action":"read","object_type":"patient","result":"success"}"#, "journal.socket.missing_field"),
            (#"{"request_id":"a","action":"read","object_type":"Patient!","result":"success"}"#, "journal.socket.invalid_field"),
            (#"{"request_id":"a","action":"read","object_type":"patient","result":"maybe"}"#, "journal.socket.invalid_field"),
            (#"{"request_id":"a","action":"read","object_type":"patient","result":"success","client_ip":"999.1.1.1"}"#, "journal.socket.invalid_field"),
            (#"{"request_id":"a","action":"read","object_type":"patient","result":"success","occurred_at":"yesterday"}"#, "journal.socket.invalid_field"),
            (#"{"request_id":"a","action":"read","object_type":"patient","result":"success","actor_role":"root"}"#, "journal.socket.invalid_field"),
            (#"{"request_id":"","action":"read","object_type":"patient","result":"success"}"#, "journal.socket.invalid_field"),
        ]
        for (json, code) in cases {
            #expect(throws: IntakeProtocol.Refusal.self, "\(json)") { try decode(json) }
            do {
                _ = try decode(json)
            } catch let refusal as IntakeProtocol.Refusal {
                #expect(refusal.code == code, "\(json): \(refusal.message)")
            } catch {}
        }
    }

    @Test("The socket accepts every intake column but source, by its name, and each one reaches the recorded event")
    func acceptedFields() throws {
        // Two valid values per accepted column.
        let samples: [IntakeColumn: (String, String)] = [
            .occurredAt: ("2026-11-22T04:30:00.123Z", "2026-11-22T04:30:01Z"), .requestID: ("r-1", "r-2"),
            .actorUserID: ("7f3c1e2a-9b8d-4c6e-a5f4-0123456789ab", "00000000-0000-4000-8000-000000000001"), .actorUsername: ("alice", "bob"),
            .actorRole: ("agent", "manager"), .actorTeam: ("sau", "epl"), .action: ("read", "update"), .objectType: ("patient", "episode"),
            .objectID: ("p-1", "p-2"), .patientID: ("7f3c1e2a-9b8d-4c6e-a5f4-0123456789ab", "00000000-0000-4000-8000-000000000002"),
            .purpose: ("care", "audit"), .result: ("success", "denied"), .reason: ("care.forbidden", "care.not_found"),
            .clientIP: ("10.0.0.1", "2001:db8::1"), .userAgent: ("curl/8.5", "Mozilla/5.0"),
        ]
        #expect(Set(IntakeProtocol.acceptedFields.values) == Set(IntakeColumn.allCases.filter { $0 != .source }))
        #expect(Set(samples.keys) == Set(IntakeProtocol.acceptedFields.values), "a sample for every accepted column")
        #expect(IntakeProtocol.acceptedFields.allSatisfy { name, column in name == column.name })
        func request(changing changed: IntakeColumn?) throws -> AccessEvent {
            let fields = samples.map { column, values in (column.name, column == changed ? values.1 : values.0) }
            let json = try JSONSerialization.data(withJSONObject: Dictionary(uniqueKeysWithValues: fields))
            return try IntakeProtocol.event(from: Array(json), source: "osmose-backupd")
        }
        let base = try request(changing: nil)
        for column in samples.keys {
            #expect(try request(changing: column) != base, "\(column.name) does not reach the event")
        }
    }

    @Test("Replies are framed with a big-endian length")
    func framing() throws {
        let reply = IntakeProtocol.reply(["ok": true, "intake_id": 7])
        let length = Int(reply[0]) << 24 | Int(reply[1]) << 16 | Int(reply[2]) << 8 | Int(reply[3])
        #expect(length == reply.count - 4)
        #expect(String(decoding: reply.dropFirst(4), as: UTF8.self) == #"{"intake_id":7,"ok":true}"#)
    }
}

@Suite("Witness directories")
struct WitnessDirectoryTests {
    @Test("Notes appended are read back in order; the latest file holds the last; a torn tail is reported")
    func appendAndRead() async throws {
        try await Self.withWitness { witness in
            let notes = try Self.notes(3)
            #expect(try witness.notes().isEmpty)
            try witness.append(notes[0])
            try witness.append(notes: Array(notes[1...]))
            #expect(try witness.notes() == notes)
            #expect(String(decoding: FileManager.default.contents(atPath: witness.latestPath)!, as: UTF8.self) == notes[2])
            let handle = FileHandle(forWritingAtPath: witness.logPath)!
            handle.seekToEndOfFile()
            handle.write(Data("journal.witness.example\n4\n".utf8))
            handle.closeFile()
            #expect(throws: JournalError.self) { try witness.notes() }
        }
    }

    /// A witness directory under the temporary directory, removed after `body` on every path.
    static func withWitness(_ body: (WitnessDirectory) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("witness-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await body(WitnessDirectory(path: path))
    }

    /// Notes `1...count` of a witness log, signed.
    static func notes(_ count: Int) throws -> [String] {
        let signer = try NoteSignerKey.generate(name: "journal.witness.example")
        return try (1...count).map {
            try Checkpoint(origin: "journal.witness.example", size: UInt64($0), rootHash: [UInt8](repeating: UInt8($0 % 256), count: 32)).signed(by: [signer])
        }
    }

    @Test("A read between the daemon's two writes (log, then latest) waits for the second; a latest that stays behind is returned as it is")
    func readBetweenTheTwoWrites() async throws {
        try await Self.withWitness { witness in
            let notes = try Self.notes(3)
            try witness.append(notes: Array(notes[0...1]))
            // The daemon's first write alone: the log holds note 3, `checkpoint` still note 2.
            let handle = try #require(FileHandle(forWritingAtPath: witness.logPath))
            handle.seekToEndOfFile()
            handle.write(Data((notes[2] + "\n").utf8))
            handle.closeFile()

            let stale = try await witness.read(attempts: 3, pause: .milliseconds(10))
            #expect(stale.notes == notes && stale.latest == notes[1], "a checkpoint file left behind is returned as read, for the verifier to report")

            // The second write lands while the reader waits.
            let completing = Task {
                try await Task.sleep(for: .milliseconds(60))
                try Data(notes[2].utf8).write(to: URL(fileURLWithPath: witness.latestPath), options: .atomic)
            }
            let settled = try await witness.read(attempts: 100, pause: .milliseconds(10))
            try await completing.value
            #expect(settled.notes == notes && settled.latest == notes[2])
        }
    }

    @Test("Reads while notes are appended always see the latest file as the log's last note (the race that failed verify on a live journal)")
    func readsBesideAWriter() async throws {
        try await Self.withWitness { witness in
            let notes = try Self.notes(200)
            try witness.append(notes[0])
            let writer = Task.detached {
                for note in notes.dropFirst() {
                    try witness.append(note)
                    usleep(2_000)
                }
            }
            for number in 1...100 {
                let read = try await witness.read(attempts: 100, pause: .milliseconds(1))
                #expect(read.latest == read.notes.last, "read \(number): checkpoint is not the log's last note")
            }
            try await writer.value
            let last = try await witness.read()
            #expect(last.notes == notes && last.latest == notes.last)
        }
    }
}

@Suite("Intake scan floor")
struct IntakeFloorTests {
    @Test("The first batch and every sweep scan the whole intake; otherwise only above ids settled long enough")
    func floor() {
        let start = ContinuousClock.now
        var floor = IntakeFloor(settle: .seconds(10), sweep: .seconds(60))
        #expect(floor.floor(at: start) == 0)
        floor.took(upTo: 500, at: start)
        #expect(floor.floor(at: start + .seconds(1)) == 0, "ids taken a second ago may still have stragglers below them")
        floor.took(upTo: 900, at: start + .seconds(5))
        #expect(floor.floor(at: start + .seconds(11)) == 500)
        #expect(floor.floor(at: start + .seconds(16)) == 900)
        #expect(floor.floor(at: start + .seconds(61)) == 0, "a periodic sweep collects any straggler")
        #expect(floor.floor(at: start + .seconds(62)) == 900)
    }
}
