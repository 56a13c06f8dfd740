import Cryptography
public import Foundation
public import Keyring
public import Store

/// What retention's clock needs to know about one identified patient
/// (Code de la santé publique, art. R1112-7): the dates, decrypted.
public struct PatientClockInputs: Sendable, Hashable {
    /// The patient.
    public let patientID: UUID
    /// `YYYY-MM-DD`.
    public let birthDate: String
    /// `YYYY-MM-DD`, when recorded.
    public let dateOfDeath: String?
    /// When the patient was registered.
    public let registeredAt: Date
    /// When the last closed episode ended, if one did.
    public let lastEpisodeEnd: Date?
    /// Episodes still open.
    public let openEpisodes: Int
    /// Every episode of the patient (a legal hold may name one).
    public let episodeIDs: [UUID]
}

/// What pseudonymising one patient removed: counts and a digest of the removed
/// ciphertexts, for the disposition certificate. No value, no identifier.
public struct PseudonymisationReceipt: Sendable, Hashable, Codable {
    /// The patient.
    public let patientID: UUID
    /// The keyed pseudonym that now stands for the patient.
    public let pseudonym: String
    /// The pseudonymisation key it was computed under.
    public let keyID: Int
    /// Encrypted values and search tokens erased (or replaced by a year).
    public let valuesRemoved: Int
    /// Rows changed, per table.
    public let rows: [String: Int]
    /// SHA-256 (hex) of the removed values as they were stored: for each, sorted by
    /// `table.column` then row id, the UTF-8 of `table.column`, a NUL, the row id, a
    /// NUL, the value's length (4 bytes, big-endian) and its bytes.
    public let removedSHA256: String
}

/// Which rows of a table belong to which patients, and the column that marks them
/// pseudonymised: pseudonymisation walks the registry's tables through these.
struct PatientRows: Sendable {
    /// The qualified table.
    let table: String
    /// `SELECT row_id, patient_id` of the rows of the patients in the uuid array literal `{patients}`.
    let select: @Sendable (_ patients: String) -> String
    /// The timestamp column set when the row is pseudonymised.
    let marker: String
    /// Where the patient's pseudonym and its key id go, for the table whose direct identifiers it replaces.
    let pseudonymColumns: (pseudonym: String, keyID: String)?

    /// The care tables, in the order they are pseudonymised.
    static let care: [PatientRows] = [
        PatientRows(
            table: "care.patients", select: { "SELECT id AS row_id, id AS patient_id FROM care.patients WHERE id = ANY('\($0)'::uuid[])" },
            marker: "pseudonymised_at", pseudonymColumns: ("pseudonym", "pseudonym_key_id")),
        PatientRows(
            table: "care.episodes", select: { "SELECT id AS row_id, patient_id FROM care.episodes WHERE patient_id = ANY('\($0)'::uuid[])" },
            marker: "pseudonymised_at", pseudonymColumns: nil),
        PatientRows(
            table: "care.transmissions",
            select: {
                "SELECT t.id AS row_id, e.patient_id FROM care.transmissions t JOIN care.episodes e ON e.id = t.episode_id WHERE e.patient_id = ANY('\($0)'::uuid[])"
            }, marker: "pseudonymised_at", pseudonymColumns: nil),
        PatientRows(
            table: "care.record_versions",
            select: {
                """
                SELECT v.id AS row_id, o.patient_id FROM care.record_versions v JOIN (
                    SELECT 'patient' AS record_type, id AS record_id, id AS patient_id FROM care.patients WHERE id = ANY('\($0)'::uuid[])
                    UNION ALL SELECT 'episode', id, patient_id FROM care.episodes WHERE patient_id = ANY('\($0)'::uuid[])
                    UNION ALL SELECT 'transmission', t.id, e.patient_id FROM care.transmissions t JOIN care.episodes e ON e.id = t.episode_id
                        WHERE e.patient_id = ANY('\($0)'::uuid[])
                ) o ON o.record_type = v.record_type AND o.record_id = v.record_id
                """
            }, marker: "erased_at", pseudonymColumns: nil),
    ]
}

/// Pseudonymisation of care records past their retention term, and the clock's
/// inputs. What each encrypted column becomes is the registry's
/// (``EncryptedColumn/atTerm``): direct identifiers give way to one keyed
/// pseudonym per patient (``Keyring/Pseudonymiser``) or to their year, free text
/// and anything that may hold it are erased, the rest kept; search tokens are
/// removed. Counts, durations, statuses and dates of care stay for statistics.
extension CareStore {
    /// The clock inputs of identified patients, `limit` at a time in id order after `after`.
    public func clockInputs(after: UUID?, limit: Int, on connection: isolated Connection) throws -> [PatientClockInputs] {
        try clockInputs(where: after.map { "p.id > '\($0.uuidString.lowercased())'" } ?? "true", limit: limit, on: connection)
    }

    /// The clock inputs of the identified patients among `patients`.
    public func clockInputs(of patients: [UUID], on connection: isolated Connection) throws -> [PatientClockInputs] {
        guard !patients.isEmpty else { return [] }
        return try clockInputs(where: "p.id = ANY('\(Self.uuidArray(patients))'::uuid[])", limit: patients.count, on: connection)
    }

    private func clockInputs(where condition: String, limit: Int, on connection: isolated Connection) throws -> [PatientClockInputs] {
        let rows = try connection.copyRows(
            """
            COPY (SELECT p.id, p.birth_date, p.date_of_death,
                    (extract(epoch FROM p.created_at) * 1000000)::bigint,
                    (extract(epoch FROM max(e.closed_at)) * 1000000)::bigint,
                    count(e.id) FILTER (WHERE e.status = 'open'),
                    coalesce(string_agg(e.id::text, ','), '')
                FROM care.patients p LEFT JOIN care.episodes e ON e.patient_id = p.id
                WHERE p.pseudonymised_at IS NULL AND \(condition)
                GROUP BY p.id ORDER BY p.id LIMIT \(limit)) TO STDOUT (FORMAT binary)
            """)
        return try rows.map { row in
            guard let text = try row.uuid(0), let id = UUID(uuidString: text), let birth = row.bytes(1) else {
                throw CareError(.internalError, "a patient row lacks its id or birth date")
            }
            let episodes = try row.text(6) ?? ""
            return PatientClockInputs(
                patientID: id, birthDate: try cipher.decryptString(birth, at: EncryptedColumn.patientBirthDate.location(rowID: id)),
                dateOfDeath: try row.bytes(2).map { try cipher.decryptString($0, at: EncryptedColumn.patientDateOfDeath.location(rowID: id)) },
                registeredAt: Date(timeIntervalSince1970: Double(try row.int64(3)) / 1_000_000),
                lastEpisodeEnd: row.bytes(4) == nil ? nil : Date(timeIntervalSince1970: Double(try row.int64(4)) / 1_000_000),
                openEpisodes: Int(try row.int64(5)),
                episodeIDs: episodes.isEmpty ? [] : episodes.split(separator: ",").compactMap { UUID(uuidString: String($0)) })
        }
    }

    /// Pseudonymises `patients` in the caller's transaction and returns one receipt
    /// per patient pseudonymised now; a patient already pseudonymised (a run resumed
    /// after a crash) or unknown is left out.
    /// - Parameters:
    ///   - patients: the patients.
    ///   - time: recorded as when they were pseudonymised.
    ///   - pseudonymiser: the pseudonymisation keys.
    ///   - registry: what each encrypted column becomes; the care records' unless another is given.
    ///   - dryRun: when true, computes the receipts and changes nothing.
    public func pseudonymise(
        _ patients: [UUID], at time: Date, pseudonymiser: Pseudonymiser, registry: EncryptedColumnRegistry = .care, dryRun: Bool = false,
        on connection: isolated Connection
    ) throws -> [PseudonymisationReceipt] {
        guard !patients.isEmpty else { return [] }
        let locked = try connection.query(
            "SELECT id FROM care.patients WHERE id = ANY($1::uuid[]) AND pseudonymised_at IS NULL ORDER BY id \(dryRun ? "" : "FOR UPDATE")",
            [Self.uuidArray(patients)]
        ).rows.map { try $0.uuid("id") }
        guard !locked.isEmpty else { return [] }
        let array = Self.uuidArray(locked)
        let keyID = try pseudonymiser.primaryKeyID()
        var work = PseudonymisationWork(patients: locked)
        for scope in PatientRows.care {
            try work.read(scope, registry: registry, array: array, cipher: cipher, on: connection)
        }
        // The register of subject requests (`dsar.*`) is the controller's evidence of how it
        // answered the patient, kept for its own term, not part of the care record whose
        // legal term has ended: pseudonymisation leaves it. Every care table must be known.
        let missing = Set(registry.tables.filter { $0.hasPrefix("care.") }).subtracting(PatientRows.care.map(\.table))
        guard missing.isEmpty else {
            throw CareError(.internalError, "pseudonymisation does not know which rows of \(missing.sorted().joined(separator: ", ")) belong to a patient")
        }
        let pseudonyms = try Dictionary(uniqueKeysWithValues: locked.map { patient -> (UUID, String) in
            (patient, try work.pseudonym(of: patient, pseudonymiser: pseudonymiser, keyID: keyID))
        })
        if !dryRun {
            for scope in PatientRows.care {
                try work.write(scope, registry: registry, pseudonyms: pseudonyms, keyID: keyID, at: time, on: connection)
            }
        }
        return locked.map { patient in
            PseudonymisationReceipt(
                patientID: patient, pseudonym: pseudonyms[patient]!, keyID: keyID, valuesRemoved: work.removed[patient, default: []].count,
                rows: work.rows[patient, default: [:]], removedSHA256: work.digest(of: patient))
        }
    }

    static func uuidArray(_ ids: [UUID]) -> String { "{" + ids.map { $0.uuidString.lowercased() }.joined(separator: ",") + "}" }
}

/// The values one pseudonymisation batch reads, removes and keeps, per patient.
private struct PseudonymisationWork {
    let patients: [UUID]
    /// Removed values per patient: (`table.column`, row id, stored bytes).
    var removed: [UUID: [(place: String, row: String, bytes: [UInt8])]] = [:]
    /// Rows per patient and table.
    var rows: [UUID: [String: Int]] = [:]
    /// Decrypted direct identifiers per patient, by column.
    var identifiers: [UUID: [String: String]] = [:]
    /// Per table: the rows to change, with their years per year column.
    var changes: [String: [(row: String, years: [String: Int])]] = [:]

    init(patients: [UUID]) { self.patients = patients }

    /// Reads the encrypted values and tokens of `scope`'s rows that pseudonymisation removes.
    mutating func read(
        _ scope: PatientRows, registry: EncryptedColumnRegistry, array: String, cipher: ColumnCipher, on connection: isolated Connection
    ) throws {
        let columns = registry.columns(of: scope.table).filter { $0.atTerm != .keep }
        let tokens = registry.searchTokens.filter { $0.table == scope.table }
        let tokenColumns = tokens.flatMap { $0.tokens.map(\.column) + [$0.keyIDColumn] }
        let read = columns.map(\.column) + tokenColumns
        let selected = (["s.patient_id", "t.id"] + read.map { "t.\(quoted($0))" }).joined(separator: ", ")
        let result = try connection.copyRows(
            "COPY (SELECT \(selected) FROM \(qualified(scope.table)) t JOIN (\(scope.select(array))) s ON s.row_id = t.id ORDER BY t.id) TO STDOUT (FORMAT binary)")
        var changed: [(row: String, years: [String: Int])] = []
        for row in result {
            guard let patientText = try row.uuid(0), let patient = UUID(uuidString: patientText), let id = try row.uuid(1) else { continue }
            rows[patient, default: [:]][scope.table, default: 0] += 1
            var years: [String: Int] = [:]
            for (position, column) in columns.enumerated() {
                guard let stored = row.bytes(2 + position) else { continue }
                removed[patient, default: []].append((column.name, id, stored))
                switch column.atTerm {
                case .pseudonym:
                    identifiers[patient, default: [:]][column.column] = try cipher.decryptString(stored, at: column.location(rowID: id))
                case .year(let target):
                    let text = try cipher.decryptString(stored, at: column.location(rowID: id))
                    guard let year = Int(text.prefix(4)) else { throw CareError(.internalError, "\(column.name) does not start with a year") }
                    years[target] = year
                    identifiers[patient, default: [:]][column.column] = text
                case .destroy, .keep:
                    break
                }
            }
            for (position, column) in tokenColumns.enumerated() {
                guard let stored = row.bytes(2 + columns.count + position) else { continue }
                removed[patient, default: []].append(("\(scope.table).\(column)", id, stored))
            }
            changed.append((id, years))
        }
        changes[scope.table] = changed
    }

    /// The patient's pseudonym: of the INS when there is one, else of the name and birth date.
    func pseudonym(of patient: UUID, pseudonymiser: Pseudonymiser, keyID: Int) throws -> String {
        let known = identifiers[patient, default: [:]]
        if let ins = known["ins"] { return try pseudonymiser.pseudonym(domain: "patient.ins", parts: [ins], keyID: keyID) }
        guard let last = known["last_name"], let first = known["first_name"], let birth = known["birth_date"] else {
            throw CareError(.internalError, "a patient to pseudonymise lacks its name or birth date")
        }
        return try pseudonymiser.pseudonym(domain: "patient.name-birth", parts: [last, first, birth], keyID: keyID)
    }

    /// Erases what `scope`'s rows lose, sets their years, pseudonym and marker.
    func write(
        _ scope: PatientRows, registry: EncryptedColumnRegistry, pseudonyms: [UUID: String], keyID: Int, at time: Date,
        on connection: isolated Connection
    ) throws {
        let changed = changes[scope.table] ?? []
        guard !changed.isEmpty else { return }
        let columns = registry.columns(of: scope.table).filter { $0.atTerm != .keep }
        let yearColumns = columns.compactMap { column -> String? in
            if case .year(let target) = column.atTerm { return target }
            return nil
        }
        let tokens = registry.searchTokens.filter { $0.table == scope.table }
        var assignments = (columns.map(\.column) + tokens.flatMap { $0.tokens.map(\.column) + [$0.keyIDColumn] }).map { "\(quoted($0)) = NULL" }
        var parameters: [any PostgresEncodable] = [
            "{" + changed.map(\.row).joined(separator: ",") + "}", time,
        ]
        var unnested = ["$1::uuid[]"]
        var names = ["id"]
        for (index, target) in yearColumns.enumerated() {
            parameters.append("{" + changed.map { $0.years[target].map(String.init) ?? "NULL" }.joined(separator: ",") + "}")
            unnested.append("$\(parameters.count)::integer[]")
            names.append("year_\(index)")
            assignments.append("\(quoted(target)) = v.year_\(index)")
        }
        if let columnsOfPseudonym = scope.pseudonymColumns {
            // The patients' table: each row is a patient.
            parameters.append("{" + changed.map { pseudonyms[UUID(uuidString: $0.row)!]! }.joined(separator: ",") + "}")
            unnested.append("$\(parameters.count)::text[]")
            names.append("pseudonym")
            assignments.append("\(quoted(columnsOfPseudonym.pseudonym)) = v.pseudonym")
            assignments.append("\(quoted(columnsOfPseudonym.keyID)) = \(keyID)")
        }
        assignments.append("\(quoted(scope.marker)) = $2")
        let updated = try connection.query(
            """
            UPDATE \(qualified(scope.table)) AS t SET \(assignments.joined(separator: ", "))
            FROM unnest(\(unnested.joined(separator: ", "))) AS v(\(names.joined(separator: ", ")))
            WHERE t.id = v.id
            """, parameters
        ).affectedRows
        guard updated == changed.count else {
            throw CareError(.internalError, "\(scope.table): \(updated) rows pseudonymised, \(changed.count) expected")
        }
    }

    /// The digest of what `patient` lost (see ``PseudonymisationReceipt/removedSHA256``).
    func digest(of patient: UUID) -> String {
        let values = removed[patient, default: []].sorted { ($0.place, $0.row) < ($1.place, $1.row) }
        var message: [UInt8] = []
        for value in values {
            message += Array(value.place.utf8) + [0] + Array(value.row.utf8) + [0]
            message += withUnsafeBytes(of: UInt32(value.bytes.count).bigEndian) { Array($0) } + value.bytes
        }
        return SHA256.hash(message).map { String(format: "%02x", $0) }.joined()
    }
}

private func quoted(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

private func qualified(_ table: String) -> String { table.split(separator: ".").map { quoted(String($0)) }.joined(separator: ".") }
