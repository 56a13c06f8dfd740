public import Keyring

/// A place where values under data keys live: a table's encrypted columns, or the
/// patients' blind-index tokens. The list is the inventory's and the rotation's
/// map of the database; a table that gains an encrypted column is added here and
/// to the trigger of migration 0007's successors. A rotation rewrites a row's
/// columns together: one new row version, not one per column.
public struct KeyTarget: Sendable, Hashable, Codable {
    /// `care.patients`, or `care.patients.search_tokens`.
    public let name: String
    /// The qualified table.
    public let table: String
    /// The encrypted columns; empty for the search tokens.
    public let columns: [String]
    /// The purpose of the keys the values are under.
    public let purpose: DataKeyPurpose

    init(_ table: String, _ columns: [String]) {
        name = table
        self.table = table
        self.columns = columns
        purpose = .column
    }

    init(tokensOf table: String) {
        name = "\(table).search_tokens"
        self.table = table
        columns = []
        purpose = .blindIndex
    }

    /// Every target, columns first.
    public static let all: [KeyTarget] = [
        KeyTarget("care.patients", ["last_name", "first_name", "birth_date", "sex", "ins"]),
        KeyTarget("care.episodes", ["reason", "imaging_note", "lab_note", "activity_status"]),
        KeyTarget("care.transmissions", ["body", "checklist"]),
        KeyTarget("care.record_versions", ["snapshot"]),
        KeyTarget(tokensOf: "care.patients"),
    ]

    /// The targets holding values under keys of `purpose`.
    public static func of(_ purpose: DataKeyPurpose) -> [KeyTarget] { all.filter { $0.purpose == purpose } }

    /// The target named `name`.
    public static func named(_ name: String) -> KeyTarget? { all.first { $0.name == name } }

    /// What the inventory counts separately, and the SQL giving the key id each
    /// row's value is under: `table.column` per encrypted column, `table.search_tokens`.
    var places: [(name: String, keyExpression: String)] {
        columns.isEmpty ? [(name, "blind_key_id")] : columns.map { ("\(table).\($0)", "keys.ciphertext_key(\($0))") }
    }
}
