public import CareRecords
import Cryptography
public import Foundation
public import Journal
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
///
/// What is rotated is what `registry` declares (``CareRecords/EncryptedColumnRegistry/care``
/// unless another is given): its encrypted columns under column keys, its search
/// tokens under blind-index keys. A rotation must be worked and finished with the
/// registry it was started with.
public enum KeyRotation {
    /// Starts a rotation of `purpose`: a new primary key, the current one demoted to
    /// decrypt-only, the work recorded for osmose-keyd (one entry per target of
    /// `registry`), and a journal event.
    /// - Throws: ``KeyringError/Code/refused`` when one is already running for the purpose.
    public static func start(
        purpose: DataKeyPurpose, reason: String, master: MasterKey, cryptoperiodDays: Int, actor: SystemActor,
        registry: EncryptedColumnRegistry = .care, on connection: isolated Connection
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
        for target in registry.keyTargets(of: purpose) {
            try connection.query("INSERT INTO keys.rotation_progress (rotation_id, target) VALUES ($1, $2)", [id, target.name])
        }
        try connection.record(actor.keyEvent(objectType: "data-key", objectID: "\(newID)", reason: "rotation \(id) of \(purpose.rawValue) keys: \(reason)"))
        return RotationRecord(id: id, purpose: purpose, toKey: newID, fromKeys: decryptOnly, state: "running", rewritten: 0)
    }

    /// What ``start(purpose:reason:master:cryptoperiodDays:actor:registry:on:)`` would do,
    /// checked as the real run checks it (the master key against the keyring, no
    /// rotation of the purpose running, the reason), then rolled back: nothing
    /// changes and nothing is journaled.
    /// - Returns: how many values would be queued for re-encryption.
    /// - Throws: what the real run would: ``KeyringError/Code/wrongMasterKey`` for
    ///   another master key, ``KeyringError/Code/refused`` for a running rotation or
    ///   a bad reason.
    public static func rehearse(
        purpose: DataKeyPurpose, reason: String, master: MasterKey, cryptoperiodDays: Int, actor: SystemActor,
        registry: EncryptedColumnRegistry = .care, on connection: Connection
    ) async throws -> Int {
        do {
            return try await connection.transaction { connection -> Int in
                let queued = try census(purpose, registry: registry, on: connection).values.flatMap(\.values).reduce(0, +)
                _ = try start(
                    purpose: purpose, reason: reason, master: master, cryptoperiodDays: cryptoperiodDays, actor: actor, registry: registry,
                    on: connection)
                throw DryRunRollback(count: Int(queued))
            }
        } catch let rollback as DryRunRollback {
            return rollback.count
        }
    }

    /// The primary key of `purpose` whose cryptoperiod (`cryptoperiodDays` after it
    /// was made, unless it was given a date to rotate after) has ended, when no
    /// rotation of the purpose is running: the key osmose-keyd replaces.
    public static func dueKey(purpose: DataKeyPurpose, cryptoperiodDays: Int, on connection: isolated Connection) throws -> Int? {
        try connection.query(
            """
            SELECT id FROM keys.data_keys WHERE purpose = $1 AND state = 'primary'
                AND coalesce(rotate_after, created_at + make_interval(days => $2)) <= now()
                AND NOT EXISTS (SELECT 1 FROM keys.rotations WHERE purpose = $1 AND state = 'running')
            """, [purpose.rawValue, cryptoperiodDays]
        ).rows.first.map { try $0.int("id") }
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
    /// - Throws: ``KeyringError/Code/refused`` when the rotation names a target `registry` does not declare.
    public static func nextTarget(
        of rotation: RotationRecord, registry: EncryptedColumnRegistry = .care, on connection: isolated Connection
    ) throws -> (target: KeyTarget, after: UUID?)? {
        guard let row = try connection.query(
            "SELECT target, after_id FROM keys.rotation_progress WHERE rotation_id = $1 AND NOT done ORDER BY target LIMIT 1", [rotation.id]
        ).singleRow() else { return nil }
        guard let target = registry.keyTarget(named: try row.string("target")) else {
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
        let rewritten: Int
        let rows: [BinaryCopyDecoder.Row]
        let id = target.rowIDColumn
        switch target.contents {
        case .columns(let columns):
            rows = try connection.copyRows(page(of: target.table, rowID: id, reading: columns.map(\.column), after: after, limit: limit))
            rewritten = try rewriteColumns(rows, table: target.table, rowID: id, columns: columns, toKey: rotation.toKey, ring: ring, on: connection)
        case .searchTokens(let tokens):
            rows = try connection.copyRows(
                page(of: target.table, rowID: id, reading: tokens.sources.map(\.column) + [tokens.keyIDColumn], after: after, limit: limit))
            rewritten = try rewriteTokens(rows, of: tokens, toKey: rotation.toKey, ring: ring, on: connection)
        }
        let last = try rows.last.map { try $0.uuid(0) ?? "" }
        try connection.query(
            "UPDATE keys.rotation_progress SET after_id = coalesce($3::uuid, after_id), done = $4, rewritten = rewritten + $5 WHERE rotation_id = $1 AND target = $2",
            [rotation.id, target.name, last, rows.count < limit, rewritten])
        try connection.query("UPDATE keys.rotations SET rewritten = rewritten + $2 WHERE id = $1", [rotation.id, rewritten])
        return (rewritten, rows.count)
    }

    /// The COPY of the next `limit` rows of `table` after `after` in id order: the
    /// row id first, then `columns`.
    private static func page(of table: String, rowID: String, reading columns: [String], after: UUID?, limit: Int) -> String {
        let id = SQLName.column(rowID)
        let start = after.map { "WHERE \(id) > '\($0.uuidString.lowercased())'" } ?? ""
        let selected = ([rowID] + columns).map(SQLName.column).joined(separator: ", ")
        return "COPY (SELECT \(selected) FROM \(SQLName.table(table)) \(start) ORDER BY \(id) LIMIT \(limit)) TO STDOUT (FORMAT binary)"
    }

    /// Rewrites the values of each row under old keys, all of a row's columns in one
    /// UPDATE; returns how many values moved.
    private static func rewriteColumns(
        _ rows: [BinaryCopyDecoder.Row], table: String, rowID: String, columns: [EncryptedColumn], toKey: Int, ring: DataKeyRing,
        on connection: isolated Connection
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
                let location = column.location(rowID: id)
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
        let names = columns.map { SQLName.column($0.column) }
        let assignments = names.enumerated().map { "\($1) = coalesce(v.new_\($0), t.\($1))" }.joined(separator: ", ")
        let unchanged = names.enumerated().map { "t.\($1) IS NOT DISTINCT FROM v.old_\($0)" }.joined(separator: " AND ")
        let id = SQLName.column(rowID)
        let updated = try connection.query(
            "UPDATE \(SQLName.table(table)) AS t SET \(assignments) FROM \(staging) AS v WHERE t.\(id) = v.id AND \(unchanged) RETURNING t.\(id)::text AS id"
        ).rows
        return try updated.reduce(0) { $0 + (moved[try $1.string("id")] ?? 0) }
    }

    /// Computes each row's tokens under `toKey` from the decrypted sources, and
    /// writes them with the key id; returns how many rows moved.
    private static func rewriteTokens(
        _ rows: [BinaryCopyDecoder.Row], of set: SearchTokenSet, toKey: Int, ring: DataKeyRing, on connection: isolated Connection
    ) throws -> Int {
        let cipher = ColumnCipher(ring: ring)
        let index = BlindIndex(ring: ring)
        let sources = set.sources
        let keyPosition = 1 + sources.count
        var batch = BinaryCopyEncoder(reservingCapacity: rows.count * 200)
        var count = 0
        for row in rows {
            guard let id = try row.uuid(0), row.bytes(keyPosition) != nil else { continue }
            let oldKey = try row.int32(keyPosition)
            guard Int(oldKey) != toKey else { continue }
            var plaintexts: [String: String] = [:]
            for (position, source) in sources.enumerated() {
                if let stored = row.bytes(1 + position) { plaintexts[source.column] = try cipher.decryptString(stored, at: source.location(rowID: id)) }
            }
            batch.beginRow(fields: 2 + sources.count + set.tokens.count)
            try batch.uuid(id)
            batch.int32(oldKey)
            for position in sources.indices {
                if let stored = row.bytes(1 + position) { batch.bytea(stored) } else { batch.null() }
            }
            for token in set.tokens {
                if let value = try token.token(of: plaintexts, index: index, keyID: toKey) { batch.bytea(value) } else { batch.null() }
            }
            count += 1
        }
        guard count > 0 else { return 0 }
        batch.finish()
        let staging = "keyd_tokens_\(sources.count)_\(set.tokens.count)"
        let sourceColumns = sources.indices.map { "source_\($0) bytea" } + set.tokens.indices.map { "token_\($0) bytea" }
        try connection.query(
            "CREATE TEMP TABLE IF NOT EXISTS \(staging) (id uuid PRIMARY KEY, old_key integer NOT NULL, \(sourceColumns.joined(separator: ", "))) ON COMMIT DELETE ROWS")
        let data = batch.bytes
        try connection.copyIn("COPY \(staging) FROM STDIN (FORMAT binary)") { try $0.write(data) }
        // Compare-and-set on the key and the ciphertexts the tokens were computed from.
        let keyColumn = SQLName.column(set.keyIDColumn)
        let assignments = set.tokens.enumerated().map { "\(SQLName.column($1.column)) = k.token_\($0)" } + ["\(keyColumn) = \(toKey)"]
        let unchanged = sources.enumerated().map { "t.\(SQLName.column($1.column)) IS NOT DISTINCT FROM k.source_\($0)" }
        return try connection.query(
            """
            UPDATE \(SQLName.table(set.table)) AS t SET \(assignments.joined(separator: ", "))
            FROM \(staging) AS k
            WHERE t.\(SQLName.column(set.rowIDColumn)) = k.id AND t.\(keyColumn) = k.old_key AND \(unchanged.joined(separator: " AND "))
            """).affectedRows
    }

    /// How many values of each target of `purpose` (every purpose when nil) are under
    /// each key, by the target's place (`table.column`, `table.search_tokens`).
    public static func census(
        _ purpose: DataKeyPurpose? = nil, registry: EncryptedColumnRegistry = .care, on connection: isolated Connection
    ) throws -> [String: [Int: Int64]] {
        var counts: [String: [Int: Int64]] = [:]
        for target in registry.keyTargets where purpose == nil || target.purpose == purpose {
            for place in target.places {
                let rows = try connection.query(
                    "SELECT \(place.keyExpression) AS key, count(*) AS n FROM \(SQLName.table(target.table)) WHERE \(place.keyExpression) IS NOT NULL GROUP BY 1"
                ).rows
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
    /// of `registry` under its old keys: they become retired, the rotation finished,
    /// with a journal event. Otherwise the targets still holding such values are
    /// queued again (values written just before the demotion committed).
    /// - Returns: true when the rotation finished.
    public static func finish(
        _ rotation: RotationRecord, actor: SystemActor, registry: EncryptedColumnRegistry = .care, on connection: isolated Connection
    ) throws -> Bool {
        let counts = try census(rotation.purpose, registry: registry, on: connection)
        let left = counts.filter { _, byKey in byKey.contains { rotation.fromKeys.contains($0.key) && $0.value > 0 } }
        guard left.isEmpty else {
            for target in registry.keyTargets(of: rotation.purpose) where target.places.contains(where: { left[$0.name] != nil }) {
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
            actor.keyEvent(
                objectType: "data-key", objectID: rotation.fromKeys.map(String.init).joined(separator: ","),
                reason: "rotation \(rotation.id) finished: \(rotation.rewritten) values now under key \(rotation.toKey); keys retired"))
        return true
    }
}
