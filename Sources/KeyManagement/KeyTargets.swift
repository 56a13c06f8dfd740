public import CareRecords
public import Keyring

/// A place where values under data keys live, as a rotation sweeps it and the
/// inventory counts it: one table's encrypted columns (a rotation rewrites a row's
/// columns together, one new row version, not one per column), or one table's
/// search tokens. Derived from an ``CareRecords/EncryptedColumnRegistry``, never
/// declared on its own.
public struct KeyTarget: Sendable, Hashable {
    /// What `keys.rotation_progress` records: the table (`care.patients`), or the
    /// table's tokens (`care.patients.search_tokens`).
    public let name: String
    /// The qualified table.
    public let table: String
    /// The purpose of the keys the values are under.
    public let purpose: DataKeyPurpose
    /// The row's `uuid` id column, which batches page through.
    let rowIDColumn: String
    /// The values themselves.
    let contents: Contents

    /// The values of a target.
    enum Contents: Sendable, Hashable {
        /// Encrypted columns of the table, under column keys.
        case columns([EncryptedColumn])
        /// The table's search tokens, under blind-index keys.
        case searchTokens(SearchTokenSet)
    }

    /// The encrypted columns `columns` of `table` (at least one).
    init(table: String, columns: [EncryptedColumn]) {
        name = table
        self.table = table
        purpose = .column
        rowIDColumn = columns.first?.rowIDColumn ?? "id"
        contents = .columns(columns)
    }

    /// The search tokens `tokens`.
    init(tokens: SearchTokenSet) {
        name = tokens.name
        table = tokens.table
        purpose = .blindIndex
        rowIDColumn = tokens.rowIDColumn
        contents = .searchTokens(tokens)
    }

    /// What the inventory counts separately, and the SQL giving the key id each
    /// row's value is under: `table.column` per encrypted column, `table.search_tokens`.
    var places: [(name: String, keyExpression: String)] {
        switch contents {
        case .columns(let columns): columns.map { ($0.name, "keys.ciphertext_key(\(SQLName.column($0.column)))") }
        case .searchTokens(let tokens): [(tokens.name, SQLName.column(tokens.keyIDColumn))]
        }
    }
}

extension EncryptedColumnRegistry {
    /// Every target, columns first (tables in declaration order), then search tokens.
    public var keyTargets: [KeyTarget] {
        tables.map { KeyTarget(table: $0, columns: columns(of: $0)) } + searchTokens.map { KeyTarget(tokens: $0) }
    }

    /// The targets holding values under keys of `purpose`.
    public func keyTargets(of purpose: DataKeyPurpose) -> [KeyTarget] { keyTargets.filter { $0.purpose == purpose } }

    /// The target named `name`.
    public func keyTarget(named name: String) -> KeyTarget? { keyTargets.first { $0.name == name } }
}

/// SQL identifiers for the names a registry declares: each part double-quoted
/// (quotes doubled), so that no declared name can change a statement's meaning.
enum SQLName {
    /// `schema.table` as `"schema"."table"`.
    static func table(_ qualified: String) -> String {
        qualified.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map { quoted(String($0)) }.joined(separator: ".")
    }

    /// A column as `"column"`.
    static func column(_ name: String) -> String { quoted(name) }

    private static func quoted(_ part: String) -> String { "\"" + part.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
}
