import CareRecords

/// Where rows about a patient are, table by table: the one list the access pack is
/// built from. Which columns are encrypted, and how, comes from the registry of
/// encrypted columns (``CareRecords/EncryptedColumnRegistry``): a column added
/// there is decrypted into the pack without a change here; a new table holding
/// patient rows is added here (a test walks the database's foreign keys and fails
/// on a table that can hold a patient's row and is neither here nor excluded).
public struct PatientRecordSource: Sendable, Hashable {
    /// The qualified table.
    public let table: String
    /// What it holds, in French, for the reader of the pack.
    public let title: String
    /// The SQL condition selecting the patient's rows; `$1` is the patient's id.
    public let condition: String
    /// The columns that make a row's key, in order.
    public let keyColumns: [String]
}

/// A column held about the patient but not given in the pack, and why.
public struct WithheldColumn: Sendable, Hashable {
    public let table: String
    public let column: String
    public let reason: String
}

/// The tables of the patient's record, and what is deliberately left out.
public enum PatientRecordSources {
    private static let episodes = "SELECT id FROM care.episodes WHERE patient_id = $1"
    private static let transmissions = "SELECT t.id FROM care.transmissions t JOIN care.episodes e ON e.id = t.episode_id WHERE e.patient_id = $1"
    private static let requests = "SELECT id FROM dsar.requests WHERE patient_id = $1"

    /// Every table holding rows about a patient, in the order the pack gives them.
    public static let all: [PatientRecordSource] = [
        .init(table: "care.patients", title: "Identité", condition: "id = $1", keyColumns: ["id"]),
        .init(table: "care.episodes", title: "Prises en charge (épisodes de soins)", condition: "patient_id = $1", keyColumns: ["id"]),
        .init(table: "care.episode_teams", title: "Équipes avec qui une prise en charge a été partagée", condition: "episode_id IN (\(episodes))",
            keyColumns: ["episode_id", "team_id"]),
        .init(table: "care.transmissions", title: "Transmissions ciblées", condition: "episode_id IN (\(episodes))", keyColumns: ["id"]),
        .init(
            table: "care.record_versions", title: "Historique des versions",
            condition: "(record_type = 'patient' AND record_id = $1) OR (record_type = 'episode' AND record_id IN (\(episodes))) OR (record_type = 'transmission' AND record_id IN (\(transmissions)))",
            keyColumns: ["id"]),
        .init(table: "care.patient_restrictions", title: "Limitations du traitement (RGPD art. 18)", condition: "patient_id = $1", keyColumns: ["id"]),
        .init(
            table: "care.restriction_overrides", title: "Ouvertures du dossier pendant une limitation (RGPD art. 18(2))", condition: "patient_id = $1",
            keyColumns: ["id"]),
        .init(table: "dsar.requests", title: "Vos demandes d'exercice de droits", condition: "patient_id = $1", keyColumns: ["id"]),
        .init(table: "dsar.deadlines", title: "Délais de ces demandes", condition: "request_id IN (\(requests))", keyColumns: ["request_id", "rule"]),
        .init(table: "dsar.notes", title: "Notes du délégué à la protection des données sur ces demandes", condition: "request_id IN (\(requests))", keyColumns: ["id"]),
        .init(table: "dsar.documents", title: "Documents reçus avec ces demandes", condition: "request_id IN (\(requests))", keyColumns: ["id"]),
        .init(table: "dsar.redactions", title: "Passages occultés dans les réponses", condition: "request_id IN (\(requests))", keyColumns: ["id"]),
        .init(table: "dsar.rectifications", title: "Rectifications", condition: "patient_id = $1", keyColumns: ["id"]),
    ]

    /// Tables that hold rows linked to a patient and are not in the pack, with the reason.
    public static let excluded: [String: String] = [
        "dsar.packs": "the access packs themselves: a pack does not contain earlier packs, whose digests the evidence file keeps",
        "dsar.steps": "the evidence file of the requests: each step is a journal event naming the patient, listed among the accesses with its hash",
        "journal.entries": "given as the list of accesses (consultations), each with its inclusion proof",
    ]

    /// Columns held but not given.
    public static let withheld: [WithheldColumn] = [
        .init(table: "dsar.redactions", column: "removed_text", reason: "the passage removed at review concerns a third party (CSP L1111-7); only where and why it was removed is given"),
        .init(table: "care.record_versions", column: "subject_request_id", reason: "given as the request's number in the version's author"),
    ]

    /// Text columns naming the suite's own staff (the DPO, an operator): shown by role unless staff names are given.
    public static func namesStaff(table: String, column: String) -> Bool {
        table.hasPrefix("dsar.") || table == "care.patient_restrictions" ? column.hasSuffix("_by") : false
    }
}
