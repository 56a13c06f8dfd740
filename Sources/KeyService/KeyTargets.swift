public import Keyring

/// A place where values under data keys live: an encrypted column, or the
/// patients' blind-index tokens. The list is the inventory's and the rotation's
/// map of the database; a table that gains an encrypted column is added here and
/// to the trigger of migration 0007's successors.
public struct KeyTarget: Sendable, Hashable, Codable {
    /// `care.patients.last_name`, or `care.patients.search_tokens`.
    public let name: String
    /// The qualified table.
    public let table: String
    /// The encrypted column; nil for the search tokens.
    public let column: String?
    /// The purpose of the keys the values are under.
    public let purpose: DataKeyPurpose

    init(_ table: String, _ column: String) {
        name = "\(table).\(column)"
        self.table = table
        self.column = column
        purpose = .column
    }

    init(tokensOf table: String) {
        name = "\(table).search_tokens"
        self.table = table
        column = nil
        purpose = .blindIndex
    }

    /// Every target, columns first.
    public static let all: [KeyTarget] = [
        KeyTarget("care.patients", "last_name"), KeyTarget("care.patients", "first_name"), KeyTarget("care.patients", "birth_date"),
        KeyTarget("care.patients", "sex"), KeyTarget("care.patients", "ins"),
        KeyTarget("care.episodes", "reason"), KeyTarget("care.episodes", "imaging_note"), KeyTarget("care.episodes", "lab_note"),
        KeyTarget("care.episodes", "activity_status"),
        KeyTarget("care.transmissions", "body"), KeyTarget("care.transmissions", "checklist"),
        KeyTarget("care.record_versions", "snapshot"),
        KeyTarget(tokensOf: "care.patients"),
    ]

    /// The targets holding values under keys of `purpose`.
    public static func of(_ purpose: DataKeyPurpose) -> [KeyTarget] { all.filter { $0.purpose == purpose } }

    /// The target named `name`.
    public static func named(_ name: String) -> KeyTarget? { all.first { $0.name == name } }

    /// SQL giving, per row, the key id its value is under (NULL for an absent value).
    var keyExpression: String { column.map { "keys.ciphertext_key(\($0))" } ?? "blind_key_id" }
}
