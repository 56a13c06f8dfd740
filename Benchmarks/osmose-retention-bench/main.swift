// Benchmark and test helper for retention (`scripts/bench retention`, the
// end-to-end tests; never installed):
//
//   osmose-retention-bench seed N --database CONN --master-key FILE
//           [--closed YYYY-MM-DD] [--transmissions K] [--first I] [--text WORD]
//       Writes N patients straight into the care tables with binary COPY, as
//       osmose-care would have over the years: each with one care episode closed
//       on --closed (default 2000-01-10, long past its R1112-7 term), K
//       transmissions on it (default 2) with a checklist, and a version snapshot of
//       every record; identity fields, notes and snapshots encrypted under the
//       primary column key, search tokens under the primary blind-index key.
//       Patient i (from --first, default 0) has the id
//       00000000-0000-4000-8000-<i in 12 hex digits>, and its names and texts carry
//       WORD (default "Bench"), so that a test can look for them in files.
//       Prints the number of patients and of encrypted values written.
//       With --requests-closed YEARS, then registers for each patient a subject
//       request through the DPO's register (what `osmosectl dsar open`, `note` and
//       `close --outcome refused` do, in one transaction a request), its requester's
//       name, contact and note carrying "WORD i", and moves its closing YEARS years
//       back: requests past their retention term, in one process instead of three
//       osmosectl runs each.
import CareRecords
import Foundation
import Glibc
import Keyring
import Journal
import Logging
import Store
import SubjectRequests

setlocale(LC_CTYPE, "C.UTF-8")
var logger = Logger(label: "osmose.bench")
logger.logLevel = .warning
let arguments = CommandLine.arguments
func option(_ name: String) -> String? { arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } }
guard arguments.count >= 3, arguments[1] == "seed", let count = Int(arguments[2]), count > 0, let database = option("--database"),
    let keyFile = option("--master-key")
else {
    FileHandle.standardError.write(
        Data("usage: osmose-retention-bench seed N --database CONN --master-key FILE [--closed YYYY-MM-DD] [--transmissions K] [--first I] [--text WORD] [--requests-closed YEARS]\n".utf8))
    exit(64)
}
let closed = option("--closed") ?? "2000-01-10"
let transmissionsPerEpisode = Int(option("--transmissions") ?? "2") ?? 2
let first = Int(option("--first") ?? "0") ?? 0
let word = option("--text") ?? "Bench"
var requestsClosedYearsAgo: Int?
var requestsWritten = 0
if let text = option("--requests-closed") {
    guard let years = Int(text), years >= 0 else {
        FileHandle.standardError.write(Data("--requests-closed must be a number of years, 0 or more, not '\(text)'\n".utf8))
        exit(64)
    }
    requestsClosedYearsAgo = years
}
guard let closedDay = DateFormatter.day.date(from: closed) else {
    FileHandle.standardError.write(Data("--closed must be YYYY-MM-DD\n".utf8))
    exit(64)
}

extension DateFormatter {
    static let day: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter
    }()
}

func letters(_ index: Int) -> String {
    var text = "", rest = index
    repeat {
        text.append(Character(UnicodeScalar(UInt8(97 + rest % 26))))
        rest /= 26
    } while rest > 0
    return text
}

/// The record ids of patient `index`: the kind of record in the third group, the transmission's number in the second.
func identifier(_ index: Int, kind: Int = 0, number: Int = 0) -> String { String(format: "00000000-%04x-%04x-8000-%012x", number, 0x4000 + kind, index) }

let master = try MasterKey.load(path: keyFile)
let connection = try await Connection.connect(database, applicationName: "osmose-retention-bench", logger: logger)
let ring = try await DataKeyRing.load(on: connection, master: master)
let cipher = ColumnCipher(ring: ring)
let blindIndex = BlindIndex(ring: ring)
let blindKey = try ring.primaryID(for: .blindIndex)
let (user, team) = try await connection.query("SELECT u.id, u.team_id FROM care.users u WHERE u.team_id IS NOT NULL ORDER BY u.created_at LIMIT 1").rows
    .first.map { (try $0.uuid("id").uuidString.lowercased(), try $0.uuid("team_id").uuidString.lowercased()) } ?? { fatalError("no care user with a team: add one first") }()
let microseconds = { (date: Date) in Int64(date.timeIntervalSince1970 * 1_000_000) }
let closedAt = microseconds(closedDay.addingTimeInterval(18 * 3600))
let arrivalAt = microseconds(closedDay.addingTimeInterval(-6 * 3600))
var values = 0

@MainActor func sealed(_ text: String, _ column: EncryptedColumn, _ id: String) throws -> [UInt8] {
    values += 1
    return try cipher.encrypt(text, for: column.location(rowID: id))
}

@MainActor func snapshot(_ state: [String: String], id: String) throws -> [UInt8] {
    let json = try JSONSerialization.data(withJSONObject: state, options: [.sortedKeys])
    values += 1
    return try cipher.encrypt(Array(json), for: EncryptedColumn.recordVersionSnapshot.location(rowID: id))
}

let batch = 5_000
for start in stride(from: first, to: first + count, by: batch) {
    var patients = BinaryCopyEncoder(reservingCapacity: batch * 700)
    var episodes = BinaryCopyEncoder(reservingCapacity: batch * 600)
    var transmissions = BinaryCopyEncoder(reservingCapacity: batch * transmissionsPerEpisode * 500)
    var versions = BinaryCopyEncoder(reservingCapacity: batch * (2 + transmissionsPerEpisode) * 400)
    for index in start..<min(start + batch, first + count) {
        let patient = identifier(index)
        let lastName = "\(word)nom\(letters(index))"
        let firstName = "\(word)prenom"
        let birth = String(format: "19%02d-%02d-%02d", 30 + index % 60, index % 12 + 1, index % 28 + 1)
        let number = 2_400_175_000_000 + index % 1_000_000
        let ins: String? = index % 3 == 0 ? "\(number)\(String(format: "%02d", 97 - number % 97))" : nil
        patients.beginRow(fields: 14)
        try patients.uuid(patient)
        patients.int32(1)
        patients.bytea(try sealed(lastName, .patientLastName, patient))
        patients.bytea(try sealed(firstName, .patientFirstName, patient))
        patients.bytea(try sealed(birth, .patientBirthDate, patient))
        patients.bytea(try sealed(index % 2 == 0 ? "female" : "male", .patientSex, patient))
        if let ins { patients.bytea(try sealed(ins, .patientINS, patient)) } else { patients.null() }
        let plaintexts = ["last_name": lastName, "first_name": firstName, "birth_date": birth, "ins": ins].compactMapValues { $0 }
        for token in SearchTokenSet.patients.tokens {
            if let value = try token.token(of: plaintexts, index: blindIndex, keyID: blindKey) { patients.bytea(value) } else { patients.null() }
        }
        patients.int32(Int32(blindKey))
        patients.timestamp(microsecondsSinceUnixEpoch: arrivalAt)
        try patients.uuid(user)
        patients.timestamp(microsecondsSinceUnixEpoch: arrivalAt)
        try patients.uuid(user)

        let episode = identifier(index, kind: 1)
        episodes.beginRow(fields: 18)
        try episodes.uuid(episode)
        episodes.int32(2)
        try episodes.uuid(patient)
        try episodes.uuid(team)
        episodes.timestamp(microsecondsSinceUnixEpoch: arrivalAt)
        episodes.text("walk-in")
        episodes.bytea(try sealed("\(word) motif confidentiel \(letters(index))", .episodeReason, episode))
        episodes.text("not-needed")
        episodes.text("done")
        episodes.bytea(try sealed("\(word) scanner \(letters(index))", .episodeImagingNote, episode))
        episodes.text("not-requested")
        episodes.bytea(try sealed("\(word) activite \(letters(index))", .episodeActivityStatus, episode))
        episodes.text("closed")
        episodes.timestamp(microsecondsSinceUnixEpoch: closedAt)
        episodes.timestamp(microsecondsSinceUnixEpoch: arrivalAt)
        try episodes.uuid(user)
        episodes.timestamp(microsecondsSinceUnixEpoch: closedAt)
        try episodes.uuid(user)

        versions.beginRow(fields: 8)
        let patientVersion = identifier(index, kind: 3)
        try versions.uuid(patientVersion)
        versions.text("patient")
        try versions.uuid(patient)
        versions.int32(1)
        versions.timestamp(microsecondsSinceUnixEpoch: arrivalAt)
        try versions.uuid(user)
        versions.text("{last_name,first_name,birth_date,sex}")
        versions.bytea(try snapshot(["last_name": lastName, "first_name": firstName, "birth_date": birth], id: patientVersion))
        versions.beginRow(fields: 8)
        let episodeVersion = identifier(index, kind: 4)
        try versions.uuid(episodeVersion)
        versions.text("episode")
        try versions.uuid(episode)
        versions.int32(2)
        versions.timestamp(microsecondsSinceUnixEpoch: closedAt)
        try versions.uuid(user)
        versions.text("{status,closed_at}")
        versions.bytea(try snapshot(["reason": "\(word) motif confidentiel \(letters(index))", "status": "closed"], id: episodeVersion))

        for number in 0..<transmissionsPerEpisode {
            let transmission = identifier(index, kind: 2, number: number)
            transmissions.beginRow(fields: 9)
            try transmissions.uuid(transmission)
            transmissions.int32(1)
            try transmissions.uuid(episode)
            try transmissions.uuid(user)
            try transmissions.uuid(team)
            transmissions.text("observation")
            transmissions.bytea(try sealed("\(word) transmission \(number) \(letters(index))", .transmissionBody, transmission))
            transmissions.bytea(try sealed(#"[{"done":false,"label":"\#(word) appeler \#(letters(index))"}]"#, .transmissionChecklist, transmission))
            transmissions.timestamp(microsecondsSinceUnixEpoch: arrivalAt + Int64(number + 1) * 60_000_000)
            versions.beginRow(fields: 8)
            let version = identifier(index, kind: 5, number: number)
            try versions.uuid(version)
            versions.text("transmission")
            try versions.uuid(transmission)
            versions.int32(1)
            versions.timestamp(microsecondsSinceUnixEpoch: arrivalAt + Int64(number + 1) * 60_000_000)
            try versions.uuid(user)
            versions.text("{body}")
            versions.bytea(try snapshot(["body": "\(word) transmission \(number) \(letters(index))"], id: version))
        }
    }
    patients.finish()
    episodes.finish()
    transmissions.finish()
    versions.finish()
    let (patientRows, episodeRows, transmissionRows, versionRows) = (patients.bytes, episodes.bytes, transmissions.bytes, versions.bytes)
    try await connection.transaction { connection in
        try connection.copyIn(
            """
            COPY care.patients (id, version, last_name, first_name, birth_date, sex, ins, search_name, search_ins, blind_key_id,
                created_at, created_by, updated_at, updated_by) FROM STDIN (FORMAT binary)
            """) { try $0.write(patientRows) }
        try connection.copyIn(
            """
            COPY care.episodes (id, version, patient_id, team_id, arrival_at, arrival_mode, reason, box_status, imaging_status, imaging_note, lab_status,
                activity_status, status, closed_at, created_at, created_by, updated_at, updated_by) FROM STDIN (FORMAT binary)
            """) { try $0.write(episodeRows) }
        if transmissionsPerEpisode > 0 {
            try connection.copyIn(
                """
                COPY care.transmissions (id, version, episode_id, author_id, author_team_id, category, body, checklist, written_at)
                FROM STDIN (FORMAT binary)
                """) { try $0.write(transmissionRows) }
        }
        // changed_fields is a text[]: staged as text (binary COPY would need the array's binary form), then cast.
        try connection.query(
            """
            CREATE TEMP TABLE staged_versions (id uuid, record_type text, record_id uuid, version integer, changed_at timestamptz, changed_by uuid,
                changed_fields text, snapshot bytea) ON COMMIT DROP
            """)
        try connection.copyIn("COPY staged_versions FROM STDIN (FORMAT binary)") { try $0.write(versionRows) }
        try connection.query(
            """
            INSERT INTO care.record_versions (id, record_type, record_id, version, changed_at, changed_by, changed_fields, snapshot)
            SELECT id, record_type, record_id, version, changed_at, changed_by, changed_fields::text[], snapshot FROM staged_versions
            """)
    }
}
_ = try await connection.query("ANALYZE care.patients, care.episodes, care.transmissions, care.record_versions")
if let years = requestsClosedYearsAgo {
    let register = RequestRegister(actor: .operator("bench via osmose-retention-bench", role: .dpo), timeZone: TimeZone(identifier: "Europe/Paris")!, ring: ring)
    let received = Date().addingTimeInterval(-3600)
    for index in first..<(first + count) {
        let canary = "\(word) \(index)"
        let new = NewRequest(
            kind: .access, subject: .patientID(UUID(uuidString: identifier(index))!), capacity: .patient, requesterName: "\(canary) requester",
            requesterContact: "\(canary) contact", receivedAt: received)
        try await connection.transaction { connection in
            let record = try register.open(new, on: connection)
            _ = try register.addNote(number: record.number, "\(canary) note", on: connection)
            _ = try register.close(number: record.number, outcome: .refused, on: connection)
            try connection.query("UPDATE dsar.requests SET closed_at = closed_at - make_interval(years => $2) WHERE number = $1", [record.number, years])
        }
        requestsWritten += 1
    }
}
/// Prints the summary line. Built in a function, not in the top-level async code:
/// there, LeakSanitizer reported the interpolated string as leaked at exit
/// (`scripts/test --sanitize address`, the tests that run this helper).
@MainActor func printSummary() {
    let requests = requestsClosedYearsAgo == nil ? "" : ", \(requestsWritten) closed subject requests"
    print("\(count) patients, \(count * transmissionsPerEpisode) transmissions, \(values) encrypted values\(requests)")
}
printSummary()
await connection.close()
