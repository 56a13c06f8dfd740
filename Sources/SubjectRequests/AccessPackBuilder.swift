public import CareRecords
import Cryptography
public import Foundation
import Journal
public import Keyring
public import Store

/// A passage the DPO removes from a pack at review.
public struct Redaction: Sendable, Hashable, Codable {
    /// The table, row key and column of the value it is removed from.
    public var table: String
    public var row: String
    public var column: String
    /// The exact text removed (stored encrypted, never given).
    public var text: String
    /// Why.
    public var reason: RedactionReason

    /// A passage to remove. A row key that is a uuid is kept as PostgreSQL prints
    /// it (lower case), whichever case it was given in (the care API's JSON spells
    /// uuids in upper case, the draft in lower case).
    public init(table: String, row: String, column: String, text: String, reason: RedactionReason) {
        self.table = table
        self.row = UUID(uuidString: row).map { $0.uuidString.lowercased() } ?? row
        self.column = column
        self.text = text
        self.reason = reason
    }
}

/// Builds a patient's access pack from the database: every row of
/// ``PatientRecordSources``, each encrypted column decrypted as the registry
/// declares it, and every journal entry naming the patient with its inclusion
/// proof. Run it in one REPEATABLE READ transaction, so that the rows, the entries
/// and the checkpoint are one snapshot.
public struct AccessPackBuilder: Sendable {
    let ring: DataKeyRing
    let registry: EncryptedColumnRegistry

    /// A builder decrypting with `ring`, reading encrypted columns from `registry`.
    public init(ring: DataKeyRing, registry: EncryptedColumnRegistry = .care) {
        self.ring = ring
        self.registry = registry
    }

    /// The pack of `request`'s patient.
    /// - Parameters:
    ///   - request: the request it answers (about a patient).
    ///   - staffNames: name staff (the DPO's decision) or show them by role and team only.
    ///   - redactions: passages to remove; each must be found where it is named.
    ///   - withConsultations: false to leave out the accesses and their proofs (checking a redaction).
    ///   - now: the moment written as the build time.
    /// - Throws: ``SubjectRequestError`` `.journalNotReady` without a signed
    ///   checkpoint, `.redactionNotFound`, `.patientPseudonymised`.
    public func build(
        for request: RequestRecord, staffNames: Bool, redactions: [Redaction], withConsultations: Bool = true, now: Date = Date(),
        on connection: isolated Connection
    ) throws -> AccessPack {
        guard let patient = request.patientID else {
            throw SubjectRequestError(.wrongKind, "request \(request.number) is about a staff account, not a patient: it has no access pack")
        }
        try PatientMatching.requireIdentifiable(patient, on: connection)
        guard let checkpoint = try JournalDatabase.latestCheckpoint(on: connection) else {
            throw SubjectRequestError(.journalNotReady, "the journal has no signed checkpoint yet: start osmose-journald and retry")
        }
        var context = BuildContext(staffNames: staffNames, cipher: ColumnCipher(ring: ring), registry: registry)
        try context.loadReferences(on: connection)
        var tables: [PackTable] = []
        for source in PatientRecordSources.all {
            tables.append(try context.table(source, patient: patient, on: connection))
        }
        let consultations = withConsultations ? try context.consultations(of: patient, checkpoint: checkpoint, on: connection) : []
        var applied: [PackRedaction] = []
        for redaction in redactions {
            applied.append(try Self.apply(redaction, to: &tables))
        }
        let origin = String(checkpoint.note.prefix { $0 != "\n" })
        return AccessPack(
            request: PackRequest(number: request.number, kind: request.kind, capacity: request.capacity, receivedOn: request.receivedOn),
            patientID: patient, builtAt: RequestRegister.moment(now), staffNames: staffNames, tables: tables, staff: try context.staffList(on: connection),
            consultations: consultations,
            journal: PackJournal(origin: origin, checkpointID: checkpoint.id, treeSize: checkpoint.treeSize, checkpoint: checkpoint.note),
            redactions: applied,
            withheld: PatientRecordSources.withheld.map { PackWithheld(table: $0.table, column: $0.column, reason: $0.reason) })
    }

    /// Removes `redaction`'s text from the value it names and from the snapshots of
    /// the record's versions (which hold the same text).
    static func apply(_ redaction: Redaction, to tables: inout [PackTable]) throws -> PackRedaction {
        let marker = "[passage occulté : \(redaction.reason == .thirdParty ? "tiers" : "autre patient")]"
        guard let tableIndex = tables.firstIndex(where: { $0.table == redaction.table }),
            let rowIndex = tables[tableIndex].rows.firstIndex(where: { $0.key == redaction.row }),
            let cell = tables[tableIndex].rows[rowIndex].columns[redaction.column], let value = cell.value, value.contains(redaction.text),
            cell.source == .decrypted || cell.source == .redacted || cell.source == .clear
        else {
            throw SubjectRequestError(
                .redactionNotFound, "the text to redact is not in \(redaction.table) row \(redaction.row) column \(redaction.column): copy it exactly from the draft")
        }
        tables[tableIndex].rows[rowIndex].columns[redaction.column] = PackCell(value: value.replacingOccurrences(of: redaction.text, with: marker), source: .redacted)
        var places = 1
        if let versions = tables.firstIndex(where: { $0.table == "care.record_versions" }) {
            for index in tables[versions].rows.indices where tables[versions].rows[index].columns["record_id"]?.value == redaction.row {
                guard let snapshot = tables[versions].rows[index].columns["snapshot"]?.value, snapshot.contains(jsonEscaped(redaction.text)) else { continue }
                tables[versions].rows[index].columns["snapshot"] = PackCell(
                    value: snapshot.replacingOccurrences(of: jsonEscaped(redaction.text), with: jsonEscaped(marker)), source: .redacted)
                places += 1
            }
        }
        return PackRedaction(table: redaction.table, row: redaction.row, column: redaction.column, reason: redaction.reason, places: places)
    }

    /// `text` as it appears inside a JSON string (the snapshots are canonical JSON).
    static func jsonEscaped(_ text: String) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let quoted = (try? encoder.encode(text)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\(text)\""
        return String(quoted.dropFirst().dropLast())
    }
}

/// What a build collects as it goes: the staff and teams rows refer to.
struct BuildContext {
    let staffNames: Bool
    let cipher: ColumnCipher
    let registry: EncryptedColumnRegistry
    /// (table, column) → the referenced table, for the foreign keys to users and teams.
    var references: [String: String] = [:]
    var teamCodes: [UUID: String] = [:]
    /// Staff met, in order: a user id or an operator's identity text → reference.
    var staffOrder: [String] = []
    var staffReferences: [String: String] = [:]
    var operatorIdentities: Set<String> = []
    /// Login names met in the journal, by user id (for users since deleted).
    var journalActors: [String: (username: String?, role: String?, team: String?)] = [:]

    init(staffNames: Bool, cipher: ColumnCipher, registry: EncryptedColumnRegistry) {
        self.staffNames = staffNames
        self.cipher = cipher
        self.registry = registry
    }

    mutating func loadReferences(on connection: isolated Connection) throws {
        for row in try connection.query(
            """
            SELECT c.conrelid::regclass::text AS source, a.attname::text AS column_name, c.confrelid::regclass::text AS target
            FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 AND c.confrelid IN ('care.users'::regclass, 'care.teams'::regclass)
            """
        ).rows {
            references["\(try row.string("source")).\(try row.string("column_name"))"] = try row.string("target")
        }
        for row in try connection.query("SELECT id, code FROM care.teams").rows { teamCodes[try row.uuid("id")] = try row.string("code") }
    }

    /// The reference of a member of staff, recorded for the staff list.
    mutating func staff(_ key: String) -> String {
        if let known = staffReferences[key] { return known }
        let reference = "staff-\(staffOrder.count + 1)"
        staffOrder.append(key)
        staffReferences[key] = reference
        return reference
    }

    mutating func table(_ source: PatientRecordSource, patient: UUID, on connection: isolated Connection) throws -> PackTable {
        let parts = source.table.split(separator: ".").map(String.init)
        let types = Dictionary(
            uniqueKeysWithValues: try connection.query(
                "SELECT column_name::text AS name, data_type::text AS type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
                [parts[0], parts[1]]
            ).rows.map { (try $0.string("name"), try $0.string("type")) })
        let order = source.keyColumns.map { "\"\($0)\"" }.joined(separator: ", ")
        let result = try connection.query("SELECT * FROM \(source.table) WHERE \(source.condition) ORDER BY \(order)", [patient])
        let encrypted = Dictionary(uniqueKeysWithValues: registry.columns(of: source.table).map { ($0.column, $0) })
        let tokenColumns = Set(registry.searchTokens.filter { $0.table == source.table }.flatMap { $0.tokens.map(\.column) })
        let withheld = Set(PatientRecordSources.withheld.filter { $0.table == source.table }.map(\.column))
        var rows: [PackRow] = []
        for row in result.rows {
            let values = Dictionary(uniqueKeysWithValues: zip(result.columns, row.values))
            let key = source.keyColumns.map { values[$0].flatMap { $0 } ?? "" }.joined(separator: "/")
            var cells: [String: PackCell] = [:]
            for column in result.columns {
                guard let text = values[column] ?? nil else {
                    cells[column] = PackCell(value: nil, source: .clear)
                    continue
                }
                if source.table == "dsar.rectifications" && column == "recipients" {
                    cells[column] = PackCell(value: try recipients(text), source: staffNames ? .clear : .staff)
                } else if withheld.contains(column) {
                    cells[column] = PackCell(value: "[non communiqué]", source: .withheld)
                } else if let declared = encrypted[column] {
                    let rowID = values[declared.rowIDColumn].flatMap { $0 } ?? ""
                    cells[column] = try decrypted(text, declared, rowID: rowID, isSnapshot: declared == .recordVersionSnapshot)
                } else if tokenColumns.contains(column) {
                    cells[column] = PackCell(value: "présent (empreinte de recherche, non réversible)", source: .searchToken)
                } else if let target = references["\(source.table).\(column)"] {
                    if target == "care.teams" {
                        cells[column] = PackCell(value: UUID(uuidString: text).flatMap { teamCodes[$0] } ?? text, source: .team)
                    } else {
                        cells[column] = PackCell(value: staff(text.lowercased()), source: .staff)
                    }
                } else if PatientRecordSources.namesStaff(table: source.table, column: column) {
                    operatorIdentities.insert(text)
                    cells[column] = PackCell(value: staff("operator:" + text), source: .staff)
                } else if types[column] == "bytea" {
                    cells[column] = PackCell(value: text.hasPrefix("\\x") ? String(text.dropFirst(2)) : text, source: .bytes)
                } else {
                    cells[column] = PackCell(value: text, source: .clear)
                }
            }
            rows.append(PackRow(key: key, columns: cells))
        }
        return PackTable(table: source.table, title: source.title, rows: rows)
    }

    /// An encrypted value, decrypted: UTF-8 text as it is, other bytes in base64; a
    /// version snapshot with its authors shown as staff references unless names are given.
    mutating func decrypted(_ stored: String, _ column: EncryptedColumn, rowID: String, isSnapshot: Bool) throws -> PackCell {
        guard stored.hasPrefix("\\x"), let bytes = Self.hexBytes(stored.dropFirst(2)) else {
            throw SubjectRequestError(.internalError, "\(column.name) of row \(rowID) is not stored as bytes")
        }
        let plain = try cipher.decrypt(bytes, at: column.location(rowID: rowID))
        guard let text = String(validating: plain, as: UTF8.self) else {
            return PackCell(value: "base64:" + Data(plain).base64EncodedString(), source: .decrypted)
        }
        guard isSnapshot, !staffNames else { return PackCell(value: text, source: .decrypted) }
        return PackCell(value: try anonymisedSnapshot(text), source: .decrypted)
    }

    /// A version snapshot whose `author` (a login name) is replaced by the author's staff reference.
    mutating func anonymisedSnapshot(_ text: String) throws -> String {
        guard var object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], let author = object["author"] as? String else {
            return text
        }
        object["author"] = staff("username:" + author)
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }

    /// A rectification's recipients (GDPR art. 19), each by staff reference unless names are given.
    mutating func recipients(_ json: String) throws -> String {
        guard !staffNames, let list = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] else { return json }
        let anonymised: [[String: Any]] = list.map { recipient in
            var copy = recipient
            let key = (recipient["userID"] as? String) ?? (recipient["username"] as? String).map { "username:" + $0 }
            if let key {
                journalActors[key] = (recipient["username"] as? String, recipient["role"] as? String, recipient["team"] as? String)
                copy["staff"] = staff(key)
            }
            copy["userID"] = nil
            copy["username"] = nil
            return copy
        }
        return String(decoding: try JSONSerialization.data(withJSONObject: anonymised, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }

    static func hexBytes(_ text: Substring) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }

    /// Every journal entry naming the patient that `checkpoint` covers, with its proof.
    mutating func consultations(of patient: UUID, checkpoint: CheckpointRecord, on connection: isolated Connection) throws -> [PackConsultation] {
        let search = JournalSearch(patientID: patient, limit: Int(Int32.max))
        var found: [(entry: JournalEntry, canonical: [UInt8])] = []
        for canonical in try JournalDatabase.canonicalBytes(matching: search, on: connection) {
            let entry = try JournalEntry(canonical: canonical)
            guard search.matches(entry), entry.sequence < checkpoint.treeSize else { continue }
            found.append((entry, canonical))
        }
        found.sort { $0.entry.sequence < $1.entry.sequence }
        let proofs = try ConsultationProofs.inclusionProofs(of: found.map(\.entry.sequence), against: checkpoint, on: connection)
        var consultations: [PackConsultation] = []
        consultations.reserveCapacity(found.count)
        for ((entry, canonical), proof) in zip(found, proofs) {
            var reference: String?
            let key = entry.actorUserID ?? entry.actorUsername.map { "username:" + $0 }
            if let key, entry.actorRole != "system" {
                journalActors[key] = (entry.actorUsername, entry.actorRole, entry.actorTeam)
                reference = staff(key)
            }
            consultations.append(
                PackConsultation(
                    sequence: entry.sequence, occurredAt: JournalEntry.rfc3339(microseconds: entry.occurredAt), action: entry.action, purpose: entry.purpose,
                    result: entry.result, reason: entry.reason, source: entry.source, objectType: entry.objectType, actorRole: entry.actorRole,
                    actorTeam: entry.actorTeam, staff: reference, actorName: staffNames ? entry.actorUsername : nil,
                    leafHash: Data(MerkleTree.leafHash(canonical)).base64EncodedString(), proof: proof,
                    entry: staffNames ? Data(canonical).base64EncodedString() : nil))
        }
        return consultations
    }

    /// The staff met, with role and team (and name, when given).
    func staffList(on connection: isolated Connection) throws -> [PackStaff] {
        let ids = staffOrder.compactMap(UUID.init(uuidString:))
        let usernames = staffOrder.filter { $0.hasPrefix("username:") }.map { String($0.dropFirst(9)) }
        var users: [String: (username: String, displayName: String, role: String, team: String?)] = [:]
        if !ids.isEmpty || !usernames.isEmpty {
            let rows = try connection.query(
                """
                SELECT u.id, u.username, u.display_name, u.role, t.code FROM care.users u LEFT JOIN care.teams t ON t.id = u.team_id
                WHERE u.id = ANY($1::uuid[]) OR u.username = ANY($2::text[])
                """,
                ["{" + ids.map { $0.uuidString.lowercased() }.joined(separator: ",") + "}", Self.textArray(usernames)]
            ).rows
            for row in rows {
                let user = (try row.string("username"), try row.string("display_name"), try row.string("role"), try row.optionalString("code"))
                users[try row.uuid("id").uuidString.lowercased()] = user
                users["username:" + user.0] = user
            }
        }
        return staffOrder.map { key in
            let reference = staffReferences[key]!
            if key.hasPrefix("operator:") {
                let identity = String(key.dropFirst(9))
                return PackStaff(
                    reference: reference, role: "dpo", team: nil, name: staffNames ? String(identity.split(separator: " ").first ?? Substring(identity)) : nil)
            }
            if let user = users[key] {
                return PackStaff(reference: reference, role: user.role, team: user.team, name: staffNames ? "\(user.displayName) (\(user.username))" : nil)
            }
            let seen = journalActors[key]
            return PackStaff(reference: reference, role: seen?.role ?? "inconnu", team: seen?.team, name: staffNames ? seen?.username ?? nil : nil)
        }
    }

    /// A PostgreSQL text array literal of `values`, each quoted.
    static func textArray(_ values: [String]) -> String {
        "{" + values.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }.joined(separator: ",") + "}"
    }
}
