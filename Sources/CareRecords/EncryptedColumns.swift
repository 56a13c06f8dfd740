public import Foundation
public import Keyring

/// What an encrypted value holds, for the capabilities that treat values by kind:
/// retention's pseudonymisation replaces direct identifiers and erases free text
/// past the legal term; a subject-request export decrypts every kind.
public enum EncryptedValueRole: String, Sendable, Hashable, Codable, CaseIterable {
    /// Identifies the patient on its own or nearly so: names, birth date, INS.
    case directIdentifier = "direct-identifier"
    /// Text written by people: it may hold anything, identifiers included.
    case freeText = "free-text"
    /// A value the service produces in a known shape (an enumeration, a JSON
    /// document); ``EncryptedColumn/holds`` says what may be inside.
    case structured
}

/// What pseudonymisation (retention, past a record's legal term) does to an
/// encrypted column's values.
public enum PseudonymisationRule: Sendable, Hashable {
    /// Erased; the patient's keyed pseudonym (`care.patients.pseudonym`), computed
    /// from the patient's identifiers, stands for all of them.
    case pseudonym
    /// Erased; its year (the value starts `YYYY`) is kept in the named plain column of the same row.
    case year(into: String)
    /// Erased.
    case destroy
    /// Kept as it is (still encrypted): a value statistics need that identifies no one.
    case keep
}

/// One encrypted column: where it is, what it holds, and how its ciphertexts are
/// bound. A value is AES-256-GCM under a column key (``Keyring/ColumnCipher``),
/// its associated data naming the qualified table, the column and the row's id
/// (the `uuid` column ``rowIDColumn``, in PostgreSQL's lowercase text form), so a
/// ciphertext moved to another row or column does not decrypt.
public struct EncryptedColumn: Sendable, Hashable {
    /// The qualified table, e.g. `care.patients`.
    public let table: String
    /// The column, e.g. `last_name`.
    public let column: String
    /// What kind of value it holds.
    public let role: EncryptedValueRole
    /// What is inside, in a few words (for the people who review an export or a
    /// pseudonymisation rule); never a value.
    public let holds: String
    /// The row's `uuid` id column, which every ciphertext of the column is bound to.
    public let rowIDColumn: String
    /// What pseudonymisation does to its values.
    public let atTerm: PseudonymisationRule

    /// Declares an encrypted column.
    /// - Parameters:
    ///   - table: the qualified table (`schema.table`).
    ///   - column: the column (`bytea`).
    ///   - role: what kind of value it holds.
    ///   - holds: what is inside, in a few words.
    ///   - rowIDColumn: the row's `uuid` id column; `id` in every care table.
    ///   - atTerm: what pseudonymisation does to it; by default, from its role: a
    ///     direct identifier gives way to the pseudonym, free text is destroyed, a
    ///     structured value is kept. A structured value that may hold free text or
    ///     identifiers must say `.destroy`.
    public init(
        table: String, column: String, role: EncryptedValueRole, holds: String, rowIDColumn: String = "id", atTerm: PseudonymisationRule? = nil
    ) {
        self.table = table
        self.column = column
        self.role = role
        self.holds = holds
        self.rowIDColumn = rowIDColumn
        self.atTerm =
            atTerm
            ?? {
                switch role {
                case .directIdentifier: .pseudonym
                case .freeText: .destroy
                case .structured: .keep
                }
            }()
    }

    /// `table.column`: the name inventories and destruction evidence count values under.
    public var name: String { "\(table).\(column)" }

    /// Where the value of row `rowID` lives, which its ciphertext is bound to.
    public func location(rowID: UUID) -> ColumnCipher.Location {
        ColumnCipher.Location(table: table, column: column, rowID: rowID.uuidString.lowercased())
    }

    /// Where the value of the row whose id reads `rowID` (a uuid's text, as
    /// PostgreSQL prints it or in capitals) lives.
    public func location(rowID: String) -> ColumnCipher.Location {
        ColumnCipher.Location(table: table, column: column, rowID: rowID.lowercased())
    }
}

/// One blind-index token: an exact-match search over encrypted values without
/// decrypting the table. The token is ``Keyring/BlindIndex``'s HMAC-SHA-256, under
/// a blind-index key, of ``domain`` and the normalised plaintexts of ``sources``
/// in their order; a row lacking one of them has no token (NULL).
public struct SearchToken: Sendable, Hashable {
    /// The column the token is stored in, e.g. `search_name`.
    public let column: String
    /// The domain that separates this token from every other, e.g. `patient.name-birth`.
    public let domain: String
    /// The encrypted columns whose plaintexts feed the token, in order.
    public let sources: [EncryptedColumn]

    /// Declares a token over `sources`, stored in `column`.
    public init(column: String, domain: String, sources: [EncryptedColumn]) {
        self.column = column
        self.domain = domain
        self.sources = sources
    }

    /// The token of `parts`, the plaintexts of ``sources`` in their order, under
    /// blind-index key `keyID`.
    /// - Throws: ``CareError/Code/internalError`` when `parts` does not match the
    ///   sources; ``Keyring/KeyringError`` when the ring lacks the key.
    public func token(_ parts: [String], index: BlindIndex, keyID: Int) throws -> [UInt8] {
        guard parts.count == sources.count else {
            throw CareError(.internalError, "the \(domain) token takes \(sources.count) values, not \(parts.count)")
        }
        return try index.token(domain: domain, parts: parts, keyID: keyID)
    }

    /// The token of a row whose plaintexts are `values` (by column), or nil when
    /// one of ``sources`` has no value.
    public func token(of values: [String: String], index: BlindIndex, keyID: Int) throws -> [UInt8]? {
        let parts = sources.compactMap { values[$0.column] }
        guard parts.count == sources.count else { return nil }
        return try token(parts, index: index, keyID: keyID)
    }
}

/// The search tokens of one table and the column naming the blind-index key they
/// are under (one key for all of a row's tokens, so that a rotation moves them
/// together).
public struct SearchTokenSet: Sendable, Hashable {
    /// The qualified table.
    public let table: String
    /// The `integer` column holding the blind-index key id of the row's tokens.
    public let keyIDColumn: String
    /// The row's `uuid` id column.
    public let rowIDColumn: String
    /// The tokens.
    public let tokens: [SearchToken]

    /// Declares the tokens of `table`.
    public init(table: String, keyIDColumn: String, rowIDColumn: String = "id", tokens: [SearchToken]) {
        self.table = table
        self.keyIDColumn = keyIDColumn
        self.rowIDColumn = rowIDColumn
        self.tokens = tokens
    }

    /// `table.search_tokens`: the name inventories count the rows' tokens under.
    public var name: String { "\(table).search_tokens" }

    /// Every encrypted column some token reads, each once, in the order first met.
    public var sources: [EncryptedColumn] {
        var seen: Set<EncryptedColumn> = []
        return tokens.flatMap(\.sources).filter { seen.insert($0).inserted }
    }
}

/// The one list of encrypted columns and blind-index tokens. Key rotation and the
/// key inventory read it (``care`` by default), and so will retention's
/// pseudonymisation and subject-request exports: a column added here is rotated,
/// counted and exported without other changes in those capabilities. The
/// database guards the same columns (migration 0007's `primary_key_only`
/// triggers and osmose_keyd's column grants): a new care column is declared here
/// and in a migration extending both.
public struct EncryptedColumnRegistry: Sendable, Hashable {
    /// The encrypted columns, grouped by table in the order rotation sweeps them.
    public let columns: [EncryptedColumn]
    /// The search tokens, per table.
    public let searchTokens: [SearchTokenSet]

    /// A registry of `columns` and `searchTokens`.
    public init(columns: [EncryptedColumn], searchTokens: [SearchTokenSet]) {
        self.columns = columns
        self.searchTokens = searchTokens
    }

    /// This registry with `column` added (after the other columns of its table).
    public func adding(_ column: EncryptedColumn) -> EncryptedColumnRegistry {
        EncryptedColumnRegistry(columns: columns + [column], searchTokens: searchTokens)
    }

    /// This registry with the tokens of another table added.
    public func adding(_ tokens: SearchTokenSet) -> EncryptedColumnRegistry {
        EncryptedColumnRegistry(columns: columns, searchTokens: searchTokens + [tokens])
    }

    /// The tables holding encrypted columns, in the order first declared.
    public var tables: [String] {
        var seen: Set<String> = []
        return columns.map(\.table).filter { seen.insert($0).inserted }
    }

    /// The encrypted columns of `table`, in declaration order.
    public func columns(of table: String) -> [EncryptedColumn] { columns.filter { $0.table == table } }

    /// The suite's encrypted columns and tokens (docs/encryption.md): the care
    /// records', then the subject-request files' (schema `dsar`), which key rotation
    /// re-encrypts and key destruction counts like the others.
    public static let care = EncryptedColumnRegistry(
        columns: [
            .patientLastName, .patientFirstName, .patientBirthDate, .patientSex, .patientINS, .patientDateOfDeath,
            .episodeReason, .episodeImagingNote, .episodeLabNote, .episodeActivityStatus,
            .transmissionBody, .transmissionChecklist,
            .recordVersionSnapshot,
        ] + EncryptedColumn.subjectRequestColumns,
        searchTokens: [.patients])
}

extension EncryptedColumn {
    /// `care.patients.last_name`.
    public static let patientLastName = EncryptedColumn(
        table: "care.patients", column: "last_name", role: .directIdentifier, holds: "the patient's last name")
    /// `care.patients.first_name`.
    public static let patientFirstName = EncryptedColumn(
        table: "care.patients", column: "first_name", role: .directIdentifier, holds: "the patient's first name")
    /// `care.patients.birth_date`.
    public static let patientBirthDate = EncryptedColumn(
        table: "care.patients", column: "birth_date", role: .directIdentifier, holds: "the patient's birth date, YYYY-MM-DD",
        atTerm: .year(into: "birth_year"))
    /// `care.patients.sex`.
    public static let patientSex = EncryptedColumn(
        table: "care.patients", column: "sex", role: .structured, holds: "the patient's sex, one of the API's enumerated values")
    /// `care.patients.ins`.
    public static let patientINS = EncryptedColumn(
        table: "care.patients", column: "ins", role: .directIdentifier, holds: "the patient's national health identifier (INS), when known")
    /// `care.patients.date_of_death`.
    public static let patientDateOfDeath = EncryptedColumn(
        table: "care.patients", column: "date_of_death", role: .directIdentifier, holds: "the patient's date of death, YYYY-MM-DD, when recorded",
        atTerm: .year(into: "death_year"))
    /// `care.episodes.reason`.
    public static let episodeReason = EncryptedColumn(
        table: "care.episodes", column: "reason", role: .freeText, holds: "why the patient came, as the team wrote it")
    /// `care.episodes.imaging_note`.
    public static let episodeImagingNote = EncryptedColumn(
        table: "care.episodes", column: "imaging_note", role: .freeText, holds: "a note on imaging")
    /// `care.episodes.lab_note`.
    public static let episodeLabNote = EncryptedColumn(
        table: "care.episodes", column: "lab_note", role: .freeText, holds: "a note on laboratory tests")
    /// `care.episodes.activity_status`.
    public static let episodeActivityStatus = EncryptedColumn(
        table: "care.episodes", column: "activity_status", role: .freeText, holds: "what is under way for the patient, as the team wrote it")
    /// `care.transmissions.body`.
    public static let transmissionBody = EncryptedColumn(
        table: "care.transmissions", column: "body", role: .freeText, holds: "a targeted transmission's text")
    /// `care.transmissions.checklist`.
    public static let transmissionChecklist = EncryptedColumn(
        table: "care.transmissions", column: "checklist", role: .structured,
        holds: "a JSON list of {label, done}; the labels are written by people (free text)", atTerm: .destroy)
    /// `care.record_versions.snapshot`.
    public static let recordVersionSnapshot = EncryptedColumn(
        table: "care.record_versions", column: "snapshot", role: .structured,
        holds: "the JSON state of a patient, episode or transmission after a change: its identifiers and free text included",
        atTerm: .destroy)
}

extension EncryptedColumn {
    /// The subject-request files' encrypted columns (migration 0030), in table order.
    public static let subjectRequestColumns: [EncryptedColumn] = [
        .requestRequesterName, .requestRequesterContact, .requestIdentityCheck, .requestNoteBody, .requestDocumentName,
        .requestDocumentContent, .requestRedactedText, .requestPackContent,
    ]
    /// `dsar.requests.requester_name`.
    public static let requestRequesterName = EncryptedColumn(
        table: "dsar.requests", column: "requester_name", role: .directIdentifier, holds: "who made a subject request (the patient, a representative, an heir, a doctor)")
    /// `dsar.requests.requester_contact`.
    public static let requestRequesterContact = EncryptedColumn(
        table: "dsar.requests", column: "requester_contact", role: .directIdentifier, holds: "where to answer the requester (postal or mail address)")
    /// `dsar.requests.identity_check`.
    public static let requestIdentityCheck = EncryptedColumn(
        table: "dsar.requests", column: "identity_check", role: .freeText, holds: "the identity documents the DPO saw, as the DPO wrote it")
    /// `dsar.notes.body`.
    public static let requestNoteBody = EncryptedColumn(
        table: "dsar.notes", column: "body", role: .freeText, holds: "a DPO's note, reasoned extension notice or reasoned answer")
    /// `dsar.documents.file_name`.
    public static let requestDocumentName = EncryptedColumn(
        table: "dsar.documents", column: "file_name", role: .freeText, holds: "the name of a document received with a request")
    /// `dsar.documents.content`.
    public static let requestDocumentContent = EncryptedColumn(
        table: "dsar.documents", column: "content", role: .freeText, holds: "a document received with a request (a letter, a copy of an identity document)")
    /// `dsar.redactions.removed_text`.
    public static let requestRedactedText = EncryptedColumn(
        table: "dsar.redactions", column: "removed_text", role: .freeText, holds: "text removed from an access pack at review (a third party named)")
    /// `dsar.packs.content`.
    public static let requestPackContent = EncryptedColumn(
        table: "dsar.packs", column: "content", role: .structured,
        holds: "an approved access pack (JSON: the patient's record decrypted) until it is released")
}

extension SearchToken {
    /// `care.patients.search_name`: last name, first name and birth date together.
    public static let patientNameBirth = SearchToken(
        column: "search_name", domain: "patient.name-birth", sources: [.patientLastName, .patientFirstName, .patientBirthDate])
    /// `care.patients.search_ins`: the INS, for patients who have one.
    public static let patientINS = SearchToken(column: "search_ins", domain: "patient.ins", sources: [.patientINS])
}

extension SearchTokenSet {
    /// The patients' tokens, under the key in `blind_key_id`.
    public static let patients = SearchTokenSet(table: "care.patients", keyIDColumn: "blind_key_id", tokens: [.patientNameBirth, .patientINS])
}
