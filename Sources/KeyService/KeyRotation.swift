import CareRecords
import Cryptography
public import Foundation
import Journal
public import Keyring
public import Store

/// A rotation as `keys.rotations` records it.
public struct RotationRecord: Sendable, Hashable, Codable {
    /// Its id.
    public let id: Int64
    /// The purpose whose values move.
    public let purpose: DataKeyPurpose
    /// The key values move to (the purpose's primary when the rotation began).
    public let toKey: Int
    /// The keys values move away from (decrypt-only when the rotation began).
    public let fromKeys: [Int]
    /// running or finished.
    public let state: String
    /// Values rewritten so far.
    public let rewritten: Int64
}

/// Online rotation of data keys: a new primary at once, then every value under an
/// older key of the purpose rewritten under it, in batches that commit their
/// progress with them (a crash resumes at the last committed batch), while the care
/// service keeps serving. The older keys are retired only when, after every
/// transaction that could still write under them has ended, a scan finds no value
/// under them.
public enum KeyRotation {
    /// Starts a rotation of `purpose`: a new primary key, the current one demoted to
    /// decrypt-only, the work recorded for osmose-keyd, and a journal event.
    /// - Throws: ``KeyringError/Code/refused`` when one is already running for the purpose.
    public static func start(
        purpose: DataKeyPurpose, reason: String, master: MasterKey, cryptoperiodDays: Int, actor: KeyActor, on connection: isolated Connection
    ) throws -> RotationRecord {
        guard purpose == .column || purpose == .blindIndex else {
            throw KeyringError(.refused, "\(purpose.rawValue) keys are not rotated by osmose-keyd (no stored value is re-encrypted under them)")
        }
        guard (1...200).contains(reason.count) else { throw KeyringError(.refused, "the reason must be 1 to 200 characters") }
        if let running = try connection.query(
            "SELECT id FROM keys.rotations WHERE purpose = $1 AND state = 'running'", [purpose.rawValue]
        ).singleRow() {
            throw KeyringError(.refused, "rotation \(try running.int64("id")) of the \(purpose.rawValue) keys is still running")
        }
        let rotateAfter = Date().addingTimeInterval(Double(cryptoperiodDays) * 86_400)
        let (newID, decryptOnly) = try KeyLifecycle.promoteNewKey(
            purpose: purpose, master: master, rotateAfter: rotateAfter, createdBy: actor.name, on: connection)
        let id = try connection.query(
            "INSERT INTO keys.rotations (purpose, to_key, from_keys, state, reason, started_by) VALUES ($1, $2, $3::integer[], 'running', $4, $5) RETURNING id",
            [purpose.rawValue, newID, "{\(decryptOnly.map(String.init).joined(separator: ","))}", reason, actor.name]
        ).rows[0].int64("id")
        for target in KeyTarget.of(purpose) {
            try connection.query("INSERT INTO keys.rotation_progress (rotation_id, target) VALUES ($1, $2)", [id, target.name])
        }
        try connection.record(actor.event(objectType: "data-key", objectID: "\(newID)", reason: "rotation \(id) of \(purpose.rawValue) keys: \(reason)"))
        return RotationRecord(id: id, purpose: purpose, toKey: newID, fromKeys: decryptOnly, state: "running", rewritten: 0)
    }

    /// The rotations still running, oldest first.
    public static func running(on connection: isolated Connection) throws -> [RotationRecord] {
        try records("WHERE state = 'running'", on: connection)
    }

    /// Every rotation, newest first.
    public static func all(on connection: isolated Connection) throws -> [RotationRecord] {
        try records("", on: connection).reversed()
    }

    private static func records(_ condition: String, on connection: isolated Connection) throws -> [RotationRecord] {
        try connection.query("SELECT id, purpose, to_key, from_keys::text AS from_keys, state, rewritten FROM keys.rotations \(condition) ORDER BY id").rows
            .map { row in
                guard let purpose = DataKeyPurpose(rawValue: try row.string("purpose")) else {
                    throw KeyringError(.refused, "rotation \(try row.int64("id")) has an unknown purpose")
                }
                let from = try row.string("from_keys").trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").compactMap { Int($0) }
                return RotationRecord(
                    id: try row.int64("id"), purpose: purpose, toKey: try row.int("to_key"), fromKeys: from, state: try row.string("state"),
                    rewritten: try row.int64("rewritten"))
            }
    }

    /// The next target of `rotation` with work left, and where its last batch ended.
    public static func nextTarget(of rotation: RotationRecord, on connection: isolated Connection) throws -> (target: KeyTarget, after: UUID?)? {
        guard let row = try connection.query(
            "SELECT target, after_id FROM keys.rotation_progress WHERE rotation_id = $1 AND NOT done ORDER BY target LIMIT 1", [rotation.id]
        ).singleRow() else { return nil }
        guard let target = KeyTarget.named(try row.string("target")) else {
            throw KeyringError(.refused, "rotation \(rotation.id) names a target this build does not know: \(try row.string("target"))")
        }
        return (target, try row.optionalString("after_id").flatMap(UUID.init(uuidString:)))
    }

    /// Rewrites, in the caller's transaction, the values of `target` under keys other
    /// than the rotation's among the next `limit` rows after `after`, and records the
    /// progress with them.
    /// - Returns: how many values were rewritten and how many rows were read.
    /// - Throws: ``KeyringError/Code/staleRing`` when `ring`'s primary is not the rotation's key.
    public static func rewriteBatch(
        _ rotation: RotationRecord, target: KeyTarget, after: UUID?, limit: Int, ring: DataKeyRing, on connection: isolated Connection
    ) throws -> (rewritten: Int, read: Int) {
        guard try ring.primaryID(for: rotation.purpose) == rotation.toKey else {
            throw KeyringError.staleRing("the primary \(rotation.purpose.rawValue) key is not rotation \(rotation.id)'s key \(rotation.toKey)")
        }
        let start = after.map { "AND id > '\($0.uuidString.lowercased())'" } ?? ""
        let rewritten: Int
        let rows: [BinaryCopyDecoder.Row]
        if !target.columns.isEmpty {
            rows = try connection.copyRows(
                "COPY (SELECT id, \(target.columns.joined(separator: ", ")) FROM \(target.table) WHERE true \(start) ORDER BY id LIMIT \(limit)) TO STDOUT (FORMAT binary)")
            rewritten = try rewriteColumns(rows, table: target.table, columns: target.columns, toKey: rotation.toKey, ring: ring, on: connection)
        } else {
            rows = try connection.copyRows(
                """
                COPY (SELECT id, last_name, first_name, birth_date, ins, blind_key_id FROM \(target.table)
                    WHERE true \(start) ORDER BY id LIMIT \(limit)) TO STDOUT (FORMAT binary)
                """)
            rewritten = try rewriteTokens(rows, table: target.table, toKey: rotation.toKey, ring: ring, on: connection)
        }
        let last = try rows.last.map { try $0.uuid(0) ?? "" }
        try connection.query(
            "UPDATE keys.rotation_progress SET after_id = coalesce($3::uuid, after_id), done = $4, rewritten = rewritten + $5 WHERE rotation_id = $1 AND target = $2",
            [rotation.id, target.name, last, rows.count < limit, rewritten])
        try connection.query("UPDATE keys.rotations SET rewritten = rewritten + $2 WHERE id = $1", [rotation.id, rewritten])
        return (rewritten, rows.count)
    }

    /// Rewrites the values of each row under old keys, all of a row's columns in one
    /// UPDATE; returns how many values moved.
    private static func rewriteColumns(
        _ rows: [BinaryCopyDecoder.Row], table: String, columns: [String], toKey: Int, ring: DataKeyRing, on connection: isolated Connection
    ) throws -> Int {
        let cipher = ColumnCipher(ring: ring)
        var batch = BinaryCopyEncoder(reservingCapacity: rows.count * 200 * columns.count)
        var moved: [String: Int] = [:]
        for row in rows {
            guard let id = try row.uuid(0) else { continue }
            var fresh: [[UInt8]?] = []
            for (position, column) in columns.enumerated() {
                guard let stored = row.bytes(position + 1), ColumnCipher.keyID(of: stored) != toKey else {
                    fresh.append(nil)
                    continue
                }
                let location = ColumnCipher.Location(table: table, column: column, rowID: id)
                var plaintext = try cipher.decrypt(stored, at: location)
                defer { ConstantTime.wipe(&plaintext) }
                fresh.append(try cipher.encrypt(plaintext, for: location))
            }
            let count = fresh.count { $0 != nil }
            guard count > 0 else { continue }
            batch.beginRow(fields: 1 + 2 * columns.count)
            try batch.uuid(id)
            for (position, value) in fresh.enumerated() {
                if let old = row.bytes(position + 1) { batch.bytea(old) } else { batch.null() }
                if let value { batch.bytea(value) } else { batch.null() }
            }
            moved[id] = count
        }
        guard !moved.isEmpty else { return 0 }
        batch.finish()
        let staging = "keyd_values_\(columns.count)"
        let pairs = columns.indices.map { "old_\($0) bytea, new_\($0) bytea" }.joined(separator: ", ")
        try connection.query("CREATE TEMP TABLE IF NOT EXISTS \(staging) (id uuid PRIMARY KEY, \(pairs)) ON COMMIT DELETE ROWS")
        let data = batch.bytes
        try connection.copyIn("COPY \(staging) FROM STDIN (FORMAT binary)") { try $0.write(data) }
        // Compare-and-set on every column of the row: a row the care service changed
        // meanwhile is left alone (what it wrote is under the primary key; anything
        // else is found by the closing scan and swept again).
        let assignments = columns.enumerated().map { "\($1) = coalesce(v.new_\($0), t.\($1))" }.joined(separator: ", ")
        let unchanged = columns.enumerated().map { "t.\($1) IS NOT DISTINCT FROM v.old_\($0)" }.joined(separator: " AND ")
        let updated = try connection.query(
            "UPDATE \(table) AS t SET \(assignments) FROM \(staging) AS v WHERE t.id = v.id AND \(unchanged) RETURNING t.id::text AS id").rows
        return try updated.reduce(0) { $0 + (moved[try $1.string("id")] ?? 0) }
    }

    private static func rewriteTokens(
        _ rows: [BinaryCopyDecoder.Row], table: String, toKey: Int, ring: DataKeyRing, on connection: isolated Connection
    ) throws -> Int {
        let cipher = ColumnCipher(ring: ring)
        let index = BlindIndex(ring: ring)
        var batch = BinaryCopyEncoder(reservingCapacity: rows.count * 200)
        var count = 0
        for row in rows {
            guard let id = try row.uuid(0), Int(try row.int32(5)) != toKey, let last = row.bytes(1), let first = row.bytes(2), let birth = row.bytes(3) else {
                continue
            }
            func open(_ stored: [UInt8], _ column: String) throws -> String {
                try cipher.decryptString(stored, at: .init(table: table, column: column, rowID: id))
            }
            let ins = try row.bytes(4).map { try open($0, "ins") }
            batch.beginRow(fields: 6)
            try batch.uuid(id)
            batch.int32(try row.int32(5))
            batch.bytea(last)
            batch.bytea(
                try PatientSearchTokens.name(
                    lastName: try open(last, "last_name"), firstName: try open(first, "first_name"), birthDate: try open(birth, "birth_date"),
                    index: index, keyID: toKey))
            if let ins { batch.bytea(try PatientSearchTokens.ins(ins, index: index, keyID: toKey)) } else { batch.null() }
            batch.bytea(first + [0] + birth)
            count += 1
        }
        guard count > 0 else { return 0 }
        batch.finish()
        try connection.query(
            """
            CREATE TEMP TABLE IF NOT EXISTS keyd_tokens (id uuid PRIMARY KEY, old_key integer NOT NULL, last_name bytea NOT NULL,
                search_name bytea NOT NULL, search_ins bytea, first_birth bytea NOT NULL) ON COMMIT DELETE ROWS
            """)
        let data = batch.bytes
        try connection.copyIn("COPY keyd_tokens (id, old_key, last_name, search_name, search_ins, first_birth) FROM STDIN (FORMAT binary)") {
            try $0.write(data)
        }
        // Compare-and-set on the key and the identity ciphertexts the tokens were computed from.
        return try connection.query(
            """
            UPDATE \(table) AS t SET search_name = k.search_name, search_ins = k.search_ins, blind_key_id = \(toKey)
            FROM keyd_tokens AS k
            WHERE t.id = k.id AND t.blind_key_id = k.old_key AND t.last_name = k.last_name AND t.first_name || '\\x00'::bytea || t.birth_date = k.first_birth
            """).affectedRows
    }

    /// How many values of each target of `purpose` are under each key.
    public static func census(_ purpose: DataKeyPurpose? = nil, on connection: isolated Connection) throws -> [String: [Int: Int64]] {
        var counts: [String: [Int: Int64]] = [:]
        for target in KeyTarget.all where purpose == nil || target.purpose == purpose {
            for place in target.places {
                let rows = try connection.query(
                    "SELECT \(place.keyExpression) AS key, count(*) AS n FROM \(target.table) WHERE \(place.keyExpression) IS NOT NULL GROUP BY 1").rows
                counts[place.name] = Dictionary(uniqueKeysWithValues: try rows.map { (try $0.int("key"), try $0.int64("n")) })
            }
        }
        return counts
    }

    /// A transaction id assigned now: once no transaction older than it is running,
    /// none that began before a demotion committed earlier can still write.
    public static func fence(on connection: isolated Connection) throws -> String {
        try connection.query("SELECT pg_current_xact_id()::text AS xid").rows[0].string("xid")
    }

    /// True when every transaction older than `fence` has ended.
    public static func passed(_ fence: String, on connection: isolated Connection) throws -> Bool {
        try connection.query("SELECT pg_snapshot_xmin(pg_current_snapshot()) > $1::xid8 AS passed", [fence]).rows[0].bool("passed")
    }

    /// Finishes `rotation` when a scan (run after `fence` has passed) finds no value
    /// under its old keys: they become retired, the rotation finished, with a
    /// journal event. Otherwise the targets still holding such values are queued
    /// again (values written just before the demotion committed).
    /// - Returns: true when the rotation finished.
    public static func finish(_ rotation: RotationRecord, actor: KeyActor, on connection: isolated Connection) throws -> Bool {
        let counts = try census(rotation.purpose, on: connection)
        let left = counts.filter { _, byKey in byKey.contains { rotation.fromKeys.contains($0.key) && $0.value > 0 } }
        guard left.isEmpty else {
            for target in KeyTarget.of(rotation.purpose) where target.places.contains(where: { left[$0.name] != nil }) {
                try connection.query(
                    "UPDATE keys.rotation_progress SET done = false, after_id = NULL WHERE rotation_id = $1 AND target = $2", [rotation.id, target.name])
            }
            return false
        }
        if !rotation.fromKeys.isEmpty {
            try connection.query(
                "UPDATE keys.data_keys SET state = 'retired' WHERE id = ANY($1::integer[]) AND state = 'decrypt-only'",
                ["{\(rotation.fromKeys.map(String.init).joined(separator: ","))}"])
        }
        try connection.query("UPDATE keys.rotations SET state = 'finished', finished_at = clock_timestamp() WHERE id = $1", [rotation.id])
        try connection.record(
            actor.event(
                objectType: "data-key", objectID: rotation.fromKeys.map(String.init).joined(separator: ","),
                reason: "rotation \(rotation.id) finished: \(rotation.rewritten) values now under key \(rotation.toKey); keys retired"))
        return true
    }
}

/// Who performs a key operation, for the journal and the key records.
public struct KeyActor: Sendable {
    /// The name recorded (`created_by`, `destroyed_by`): an operator or `osmose-keyd`.
    public let name: String
    /// The journal's source program.
    public let source: String
    /// The journal's actor role.
    public let role: String

    /// A person running osmosectl.
    public static func `operator`(_ identity: String) -> KeyActor { KeyActor(name: identity, source: "osmosectl", role: "sysadmin") }
    /// The daemon itself (scheduled rotations, re-encryption).
    public static let daemon = KeyActor(name: "osmose-keyd", source: "osmose-keyd", role: "system")

    func event(objectType: String, objectID: String, reason: String) -> AccessEvent {
        var event = AccessEvent(source: source, requestID: UUID().uuidString.lowercased(), action: .keyAdmin, objectType: objectType, result: .success)
        event.actorUsername = String(name.split(separator: " ").first ?? "unknown").prefix(128).description
        event.actorRole = role
        event.objectID = String(objectID.prefix(128))
        event.purpose = .administration
        event.reason = String(reason.prefix(200))
        return event
    }
}
