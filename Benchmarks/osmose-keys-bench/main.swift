// Benchmark helper for `scripts/bench keys` (never installed):
//
//   osmose-keys-bench seed N --database CONN --master-key FILE
//       Writes N patients straight into care.patients with binary COPY, their
//       identity fields encrypted under the primary column key and their search
//       tokens under the primary blind-index key, exactly as osmose-care would
//       (4 values a patient, 5 for every third one, which has an INS). Patient i
//       has the id 00000000-0000-4000-8000-<i in 12 hex digits> and plaintexts
//       that follow from i, so that `check` can recompute them.
//   osmose-keys-bench check --database CONN --master-key FILE
//       Decrypts every patient's identity fields and compares each with what
//       `seed` wrote; prints the number of values, the key ids they are under and
//       the mismatches; exits 1 on any mismatch.
import CareRecords
import Foundation
import Glibc
import Keyring
import Logging
import Store

setlocale(LC_CTYPE, "C.UTF-8")
var logger = Logger(label: "osmose.bench")
logger.logLevel = .warning
let arguments = CommandLine.arguments
func option(_ name: String) -> String? { arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } }
guard arguments.count >= 2, ["seed", "check"].contains(arguments[1]), let database = option("--database"), let keyFile = option("--master-key") else {
    FileHandle.standardError.write(Data("usage: osmose-keys-bench seed N | check  --database CONN --master-key FILE\n".utf8))
    exit(64)
}

func letters(_ index: Int) -> String {
    var text = "", rest = index
    repeat {
        text.append(Character(UnicodeScalar(UInt8(97 + rest % 26))))
        rest /= 26
    } while rest > 0
    return text
}

func identifier(_ index: Int) -> String { String(format: "00000000-0000-4000-8000-%012x", index) }

/// The plaintexts of patient `index`, in column order; INS only for every third.
func plaintexts(_ index: Int) -> [(column: EncryptedColumn, value: String?)] {
    let number = 2_800_175_000_000 + index % 1_000_000
    return [
        (.patientLastName, "Nom-" + letters(index)), (.patientFirstName, "Prenom"), (.patientBirthDate, String(format: "1980-01-%02d", index % 28 + 1)),
        (.patientSex, index % 2 == 0 ? "female" : "male"), (.patientINS, index % 3 == 0 ? "\(number)\(String(format: "%02d", 97 - number % 97))" : nil),
    ]
}

/// Runs the command asked for and returns the exit status. The work runs in a
/// function that has returned before `exit`, so that nothing it allocated is
/// still held by a frame when the process ends: as top-level code of the async
/// `main`, LeakSanitizer reported the string printed by `seed` as leaked at exit
/// (`scripts/test --sanitize address`, DaemonStartupTests).
func run() async throws -> Int32 {
    let master = try MasterKey.load(path: keyFile)
    let connection = try await Connection.connect(database, applicationName: "osmose-keys-bench", logger: logger)
    let ring = try await DataKeyRing.load(on: connection, master: master)
    let cipher = ColumnCipher(ring: ring)
    let index = BlindIndex(ring: ring)

    switch arguments[1] {
    case "seed":
        guard let count = Int(arguments[2]), count > 0 else {
            await connection.close()
            return 64
        }
        let user = try await connection.query("SELECT id FROM care.users ORDER BY created_at LIMIT 1").rows[0].uuid("id").uuidString.lowercased()
        let blindKey = try ring.primaryID(for: .blindIndex)
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        var values = 0
        for start in stride(from: 0, to: count, by: 10_000) {
            var copy = BinaryCopyEncoder(reservingCapacity: 10_000 * 600)
            for patient in start..<min(start + 10_000, count) {
                let id = identifier(patient)
                let fields = plaintexts(patient)
                copy.beginRow(fields: 14)
                try copy.uuid(id)
                copy.int32(1)
                for (column, value) in fields {
                    guard let value else {
                        copy.null()
                        continue
                    }
                    copy.bytea(try cipher.encrypt(value, for: column.location(rowID: id)))
                    values += 1
                }
                let values = Dictionary(uniqueKeysWithValues: fields.compactMap { field in field.value.map { (field.column.column, $0) } })
                for token in SearchTokenSet.patients.tokens {
                    if let value = try token.token(of: values, index: index, keyID: blindKey) { copy.bytea(value) } else { copy.null() }
                }
                copy.int32(Int32(blindKey))
                copy.timestamp(microsecondsSinceUnixEpoch: now)
                try copy.uuid(user)
                copy.timestamp(microsecondsSinceUnixEpoch: now)
                try copy.uuid(user)
            }
            copy.finish()
            let data = copy.bytes
            _ = try await connection.perform { connection in
                try connection.copyIn(
                    """
                    COPY care.patients (id, version, last_name, first_name, birth_date, sex, ins, search_name, search_ins, blind_key_id,
                        created_at, created_by, updated_at, updated_by) FROM STDIN (FORMAT binary)
                    """) { try $0.write(data) }
            }
        }
        _ = try await connection.query("ANALYZE care.patients")
        print("\(count) patients, \(values) encrypted values")
    case "check":
        let rows = try await connection.perform { connection in
            try connection.copyRows("COPY (SELECT id, last_name, first_name, birth_date, sex, ins FROM care.patients ORDER BY id) TO STDOUT (FORMAT binary)")
        }
        var checked = 0, mismatches = 0
        var keys: [Int: Int] = [:]
        for row in rows {
            guard let id = try row.uuid(0), let patient = Int(id.suffix(12), radix: 16), id == identifier(patient) else { continue }
            for (position, (column, expected)) in plaintexts(patient).enumerated() {
                let stored = row.bytes(position + 1)
                guard let stored else {
                    if expected != nil { mismatches += 1 }
                    continue
                }
                keys[ColumnCipher.keyID(of: stored) ?? -1, default: 0] += 1
                let plain = try? cipher.decryptString(stored, at: column.location(rowID: id))
                if plain != expected { mismatches += 1 }
                checked += 1
            }
        }
        print("\(checked) values checked, under keys \(keys.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")); \(mismatches) mismatches")
        await connection.close()
        return mismatches == 0 ? 0 : 1
    default:
        await connection.close()
        return 64
    }
    await connection.close()
    return 0
}

exit(try await run())
