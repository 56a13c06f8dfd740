// Benchmark helper for `scripts/bench retention`, part (a) (never installed):
//
//   osmose-journal-archive-bench generate --database CONN --month YYYY-MM --entries N --signing-key FILE
//       Journals N synthetic access events sequenced evenly over the month (10M in a
//       month is ~3.9 a second), and 4,000 in the first hour of the next, straight into
//       a migrated, empty database, exactly as osmose-journald would have stored them:
//       canonical bytes, leaf and chain hashes, full hash tiles, and a checkpoint signed
//       with FILE's key at every second in which the tree grew (checkpoint_within 1 s),
//       re-issued every 60 s when it did not; then the head. It writes with binary COPY
//       instead of going through the intake and the daemon, which would take hours for
//       10M entries; `osmosectl journal verify` accepts the result.
import Foundation
import Glibc
import Journal
import JournalArchive
import Logging
import Store

setlocale(LC_CTYPE, "C.UTF-8")
var logger = Logger(label: "osmose.bench")
logger.logLevel = .warning

func argument(_ name: String) -> String? {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

guard CommandLine.arguments.count == 10, CommandLine.arguments[1] == "generate", let database = argument("--database"),
    let monthText = argument("--month"), let month = try? JournalMonth(parsing: monthText), let entries = argument("--entries").flatMap(Int.init),
    entries > 0, let keyFile = argument("--signing-key"), let keyText = FileManager.default.contents(atPath: keyFile),
    let signer = try? NoteSignerKey(encoded: String(decoding: keyText, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
else {
    FileHandle.standardError.write(Data("usage: osmose-journal-archive-bench generate --database CONN --month YYYY-MM --entries N --signing-key FILE\n".utf8))
    exit(64)
}

/// SplitMix64: a fixed mix, so that runs write the same rows.
func mix(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

let hexDigits = Array("0123456789abcdef".utf8)

/// A version-4-shaped UUID text drawn from `seed`: 2,000 staff members and 50,000 patients, each with one stable id.
func stableUUID(_ seed: UInt64) -> String {
    let high = mix(seed), low = mix(~seed)
    var bytes = withUnsafeBytes(of: high.bigEndian) { Array($0) } + withUnsafeBytes(of: low.bigEndian) { Array($0) }
    bytes[6] = bytes[6] & 0x0F | 0x40
    bytes[8] = bytes[8] & 0x3F | 0x80
    var text: [UInt8] = []
    text.reserveCapacity(36)
    for (index, byte) in bytes.enumerated() {
        if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
        text.append(hexDigits[Int(byte >> 4)])
        text.append(hexDigits[Int(byte & 0x0F)])
    }
    return String(decoding: text, as: UTF8.self)
}

let staffIDs = (0..<2_000).map { stableUUID(UInt64($0)) }
let patientIDs = (0..<50_000).map { stableUUID(1 << 40 | UInt64($0)) }

func entry(_ sequence: UInt64, at sequencedAt: Int64) -> JournalEntry {
    let draw = mix(sequence)
    let staff = Int(draw % 2_000)
    let patient = Int((draw >> 32) % 50_000)
    return JournalEntry(
        sequence: sequence, occurredAt: sequencedAt - 400_000 - Int64(draw % 500_000), sequencedAt: sequencedAt, source: "osmose-care",
        requestID: stableUUID(draw | 1 << 62), actorUserID: staffIDs[staff], actorUsername: "agent.\(staff)", actorRole: "agent",
        actorTeam: staff % 2 == 0 ? "sau" : "epl", action: sequence % 9 == 0 ? "update" : "read", objectType: "episode",
        objectID: stableUUID(draw | 1 << 61), patientID: patientIDs[patient], purpose: "care", result: "success", reason: nil,
        clientIP: "10.20.\(staff % 256).\(staff / 256 % 256)", userAgent: "Mozilla/5.0 (X11; Linux x86_64) Osmose/1.0")
}

let connection = try await Connection.connect(database, applicationName: "osmose-journal-archive-bench", logger: logger)
let head = try await connection.perform { try JournalDatabase.treeSize(on: $0) }
guard head == 0 else {
    FileHandle.standardError.write(Data("the journal of this database is not empty\n".utf8))
    exit(1)
}
for partition in [month, month.next] {
    let day = partition.firstDay
    try await connection.query("SELECT journal.ensure_month($1::date)", [day])
}

var edge = TreeEdge()
var compact = CompactRange(edge: edge)
var chain = JournalDatabase.chainSeed
var rows = BinaryCopyEncoder(reservingCapacity: 64 << 20)
var tiles = BinaryCopyEncoder(reservingCapacity: 16 << 20)
var notes = BinaryCopyEncoder(reservingCapacity: 16 << 20)
var pendingRows = 0, pendingNotes = 0, pendingTiles = 0
var checkpointCount: Int64 = 0
var lastCheckpointSize: UInt64 = 0
var lastCheckpointSecond: Int64 = month.start / 1_000_000
var lastSequencedAt = month.start

/// Loads the rows `encoder` holds into `table`.
func copy(_ encoder: BinaryCopyEncoder, into table: String, columns: String) async throws {
    var encoder = encoder
    encoder.finish()
    let data = encoder.bytes
    try await connection.copyIn("COPY \(table) (\(columns)) FROM STDIN (FORMAT binary)") { writer in try writer.write(data) }
}

/// Loads every pending row, checkpoint and tile, and starts new batches.
@MainActor func flushAll() async throws {
    let (entryRows, tileRows, noteRows) = (rows, tiles, notes)
    if pendingRows > 0 {
        try await copy(entryRows, into: "journal.entries", columns: "seq, sequenced_at, intake_id, canonical, leaf_hash, chain_hash, occurred_at, actor_user_id, actor_team, action, patient_id, purpose, result")
    }
    if pendingTiles > 0 { try await copy(tileRows, into: "journal.tiles", columns: "level, tile_index, hashes") }
    if pendingNotes > 0 { try await copy(noteRows, into: "journal.checkpoints", columns: "id, tree_size, root_hash, issued_at, note") }
    rows = BinaryCopyEncoder(reservingCapacity: 32 << 20)
    tiles = BinaryCopyEncoder(reservingCapacity: 1 << 20)
    notes = BinaryCopyEncoder(reservingCapacity: 8 << 20)
    (pendingRows, pendingTiles, pendingNotes) = (0, 0, 0)
}

/// A checkpoint of the tree as it is, issued at `time`, as the daemon signs it.
@MainActor func checkpoint(at time: Int64) throws {
    let root = compact.root()
    let text = Checkpoint(
        origin: signer.verifierKey.name, size: compact.size, rootHash: root,
        extensions: ["osmose-chain " + Data(chain).base64EncodedString(), "osmose-time " + JournalEntry.rfc3339(microseconds: time)])
    checkpointCount += 1
    notes.beginRow(fields: 5)
    notes.int64(checkpointCount)
    notes.int64(Int64(compact.size))
    notes.bytea(root)
    notes.timestamp(microsecondsSinceUnixEpoch: time)
    notes.bytea(Array(try text.signed(by: [signer]).utf8))
    pendingNotes += 1
    lastCheckpointSize = compact.size
}

/// Issues the checkpoints due before `time`: at the end of each second in which the tree grew, and every 60 s otherwise.
@MainActor func checkpoints(before time: Int64) throws {
    while (lastCheckpointSecond + 1) * 1_000_000 <= time {
        lastCheckpointSecond += 1
        let issued = lastCheckpointSecond * 1_000_000 + 250_000
        if compact.size > lastCheckpointSize || lastCheckpointSecond % 60 == 0 { try checkpoint(at: issued) }
    }
}

let span = Double(month.end - month.start)
let started = Date()
let total = entries + 4_000
for index in 0..<total {
    let sequence = UInt64(index)
    let sequencedAt = index < entries ? month.start + Int64(Double(index) * span / Double(entries)) : month.end + Int64(index - entries) * 900_000
    try checkpoints(before: sequencedAt)
    let canonical = entry(sequence, at: sequencedAt)
    let bytes = canonical.canonicalBytes
    let leaf = MerkleTree.leafHash(bytes)
    chain = JournalDatabase.chainHash(previous: chain, leafHash: leaf)
    for tile in edge.append(leafHash: leaf) {
        tiles.beginRow(fields: 3)
        tiles.int16(Int16(tile.level))
        tiles.int64(Int64(tile.index))
        tiles.bytea(tile.hashes)
        pendingTiles += 1
    }
    compact.append(leaf)
    rows.beginRow(fields: 13)
    rows.int64(Int64(sequence))
    rows.timestamp(microsecondsSinceUnixEpoch: sequencedAt)
    rows.int64(Int64(index + 1))
    rows.bytea(bytes)
    rows.bytea(leaf)
    rows.bytea(chain)
    rows.timestamp(microsecondsSinceUnixEpoch: canonical.occurredAt)
    try rows.uuid(canonical.actorUserID)
    rows.text(canonical.actorTeam)
    rows.text(canonical.action)
    try rows.uuid(canonical.patientID)
    rows.text(canonical.purpose)
    rows.text(canonical.result)
    pendingRows += 1
    lastSequencedAt = sequencedAt
    if pendingRows == 50_000 {
        try await flushAll()
        if index % 1_000_000 < 50_000 {
            print("\(index + 1) entries, \(checkpointCount) checkpoints, \(Int(Date().timeIntervalSince(started))) s")
            fflush(nil)
        }
    }
}
try checkpoints(before: lastSequencedAt + 2_000_000)
try await flushAll()
try await connection.query(
    "UPDATE journal.head SET tree_size = $1, chain_hash = $2, last_sequenced_at = $3::timestamptz, checkpoints = $4",
    [Int64(compact.size), chain, JournalEntry.rfc3339(microseconds: lastSequencedAt), checkpointCount])
/// Prints the summary line. Built in a function, not in the top-level async code:
/// there, LeakSanitizer reported the interpolated string as leaked at exit
/// (`scripts/test --sanitize address`, the tests that run this helper).
@MainActor func printSummary() { print("generated \(total) entries (\(entries) in \(month)), \(checkpointCount) checkpoints in \(Int(Date().timeIntervalSince(started))) s") }
printSummary()
await connection.close()
