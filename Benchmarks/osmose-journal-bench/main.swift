// Benchmark helper for `scripts/bench journal` (never installed):
//
//   osmose-journal-bench generate N FILE
//       Writes N synthetic access events in COPY text format (every column that
//       IntakeColumn declares, in its order, which is the table's) to FILE, so that the same rows
//       can be loaded with psql's \copy into an unindexed table (the bare-COPY
//       baseline) and into journal.intake (for the daemon to ingest). The events
//       come from 2,000 staff members about 50,000 patients.
//   osmose-journal-bench paced RATE SECONDS --database CONN
//       Records RATE events per second for SECONDS, one transaction each (as a care
//       read commits its event before answering), then waits for the last to be
//       covered by a signed checkpoint and prints p50, p99 and max of the delay from
//       each event's commit to the issue of the first checkpoint that covers it.
import Foundation
import Glibc
import Journal
import Logging
import Store

setlocale(LC_CTYPE, "C.UTF-8")
var logger = Logger(label: "osmose.bench")
logger.logLevel = .warning
let arguments = CommandLine.arguments
guard arguments.count == 4 && arguments[1] == "generate" || arguments.count == 6 && arguments[4] == "--database" else {
    FileHandle.standardError.write(Data("usage: osmose-journal-bench generate N FILE | paced RATE SECONDS --database CONN\n".utf8))
    exit(64)
}

/// The synthetic hospital: 2,000 staff members and 50,000 patients, each with one
/// stable UUID, as a real journal has (a random UUID per event would make every
/// search index insertion land on a cold page, which no hospital's traffic does).
let staffCount = 2_000
let patientCount = 50_000

/// SplitMix64: a fixed, seedable mix, so that runs write the same rows.
func mix(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// A version-4-shaped UUID drawn from `seed`.
func stableUUID(_ seed: UInt64) -> UUID {
    let high = mix(seed), low = mix(~seed)
    var bytes = withUnsafeBytes(of: high.bigEndian) { Array($0) } + withUnsafeBytes(of: low.bigEndian) { Array($0) }
    bytes[6] = bytes[6] & 0x0F | 0x40
    bytes[8] = bytes[8] & 0x3F | 0x80
    return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                       bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
}

func event(_ index: Int) -> AccessEvent {
    let draw = mix(UInt64(index))
    let staff = Int(draw % UInt64(staffCount))
    let patient = Int((draw >> 32) % UInt64(patientCount))
    var event = AccessEvent(source: "osmose-care", requestID: UUID().uuidString.lowercased(), action: index % 9 == 0 ? .update : .read, objectType: "episode", result: .success)
    event.actorUserID = stableUUID(UInt64(staff))
    event.actorUsername = "agent.\(staff)"
    event.actorRole = "agent"
    event.actorTeam = staff % 2 == 0 ? "sau" : "epl"
    event.objectID = UUID().uuidString.lowercased()
    event.patientID = stableUUID(1 << 40 | UInt64(patient))
    event.purpose = .care
    event.clientIP = "10.20.\(staff % 256).\(staff / 256 % 256)"
    event.userAgent = "Mozilla/5.0 (X11; Linux x86_64) Osmose/1.0"
    return event
}

func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

switch arguments[1] {
case "generate":
    let count = Int(arguments[2])!
    guard let output = FileHandle(forWritingAtPath: arguments[3]) ?? {
        _ = FileManager.default.createFile(atPath: arguments[3], contents: nil)
        return FileHandle(forWritingAtPath: arguments[3])
    }() else { exit(1) }
    var text = ""
    for index in 0..<count {
        let event = event(index)
        // The values as the intake's INSERT sends them; none of these needs COPY escaping, and no intake column is bytea.
        let fields = IntakeColumn.allCases.map { column in
            switch column.value(in: event).postgresValue {
            case .text(let text): text
            case .null, .bytes: "\\N"
            }
        }
        text += fields.joined(separator: "\t") + "\n"
        if text.utf8.count > 1 << 20 {
            output.write(Data(text.utf8))
            text = ""
        }
    }
    output.write(Data(text.utf8))
    output.closeFile()
case "paced":
    let connection = try await Connection.connect(arguments[5], applicationName: "osmose-journal-bench", logger: logger)
    let rate = Double(arguments[2])!
    let seconds = Double(arguments[3])!
    var committedAt: [String: Double] = [:]
    let start = now()
    var index = 0
    while now() - start < seconds {
        let due = start + Double(index) / rate
        let wait = due - now()
        if wait > 0 { usleep(useconds_t(wait * 1e6)) }
        let event = event(index)
        _ = try await connection.perform { try $0.record(event) }
        committedAt[event.requestID] = now()
        index += 1
    }
    let achieved = Double(index) / (now() - start)
    var covered = false
    for _ in 0..<600 where !covered {
        let pending = try await connection.query("SELECT count(*) AS n FROM journal.intake").rows[0].int("n")
        let size = try await connection.query("SELECT tree_size FROM journal.head").rows[0].int64("tree_size")
        let checkpointed = try await connection.query("SELECT coalesce(max(tree_size), 0) AS n FROM journal.checkpoints").rows[0].int64("n")
        covered = pending == 0 && checkpointed == size
        if !covered { usleep(100_000) }
    }
    let checkpoints = try await connection.query(
        "SELECT tree_size, extract(epoch FROM issued_at)::float8 AS at FROM journal.checkpoints ORDER BY id").rows.map { (try $0.int64("tree_size"), try $0.double("at")) }
    var delays: [Double] = []
    var cursor = 0
    let rows = try await connection.query("SELECT seq, canonical FROM journal.entries ORDER BY seq").rows
    for row in rows {
        let seq = try row.int64("seq")
        let entry = try JournalEntry(canonical: try row.bytes("canonical"))
        guard let committed = committedAt[entry.requestID] else { continue }
        while cursor < checkpoints.count && checkpoints[cursor].0 <= seq { cursor += 1 }
        guard cursor < checkpoints.count else { continue }
        delays.append(checkpoints[cursor].1 - committed)
    }
    delays.sort()
    func percentile(_ p: Double) -> Double { delays[min(delays.count - 1, Int(Double(delays.count) * p))] * 1000 }
    print(String(format: "%d %.1f %.1f %.1f %.1f", delays.count, achieved, percentile(0.5), percentile(0.99), delays.last! * 1000))
    await connection.close()
default:
    exit(64)
}
