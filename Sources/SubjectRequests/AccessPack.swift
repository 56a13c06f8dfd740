public import Foundation

/// Everything held about a patient, decrypted, as the access pack carries it
/// (GDPR art. 15, CSP L1111-7), and the list of the accesses to their record
/// (CJEU C-579/21), each with an inclusion proof against a signed checkpoint.
/// Its canonical JSON (``canonicalJSON()``) is what the DPO approves and what is
/// released; the HTML and FHIR forms are rendered from it.
public struct AccessPack: Sendable, Hashable, Codable {
    /// The format's name and version.
    public var format: String = "osmose.access-pack.v1"
    /// The request it answers.
    public var request: PackRequest
    /// The patient's internal id.
    public var patientID: UUID
    /// When it was built (RFC 3339, UTC).
    public var builtAt: String
    /// Whether staff are named (the DPO's decision, recorded) or shown by role and team only.
    public var staffNames: Bool
    /// Every row about the patient, table by table, in the order of ``PatientRecordSources``.
    public var tables: [PackTable]
    /// The staff the rows and accesses refer to.
    public var staff: [PackStaff]
    /// Every access to the record the journal holds, oldest first.
    public var consultations: [PackConsultation]
    /// The signed checkpoint every proof is against.
    public var journal: PackJournal
    /// Passages removed at review, where and why (never what).
    public var redactions: [PackRedaction]
    /// Values held but not given, and why.
    public var withheld: [PackWithheld]

    /// The canonical JSON: keys sorted, no escaped slashes, indented for reading.
    public func canonicalJSON() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        return Array(try encoder.encode(self))
    }

    /// A pack read back from its canonical JSON.
    public static func decode(_ json: [UInt8]) throws -> AccessPack {
        try JSONDecoder().decode(AccessPack.self, from: Data(json))
    }

    /// The table named `name`, if the pack has it.
    public func table(_ name: String) -> PackTable? { tables.first { $0.table == name } }
}

/// The request a pack answers.
public struct PackRequest: Sendable, Hashable, Codable {
    public var number: Int64
    public var kind: RequestKind
    public var capacity: RequesterCapacity
    public var receivedOn: CivilDate
}

/// The rows of one table about the patient.
public struct PackTable: Sendable, Hashable, Codable {
    /// The qualified table, e.g. `care.episodes`.
    public var table: String
    /// What it holds, in French, for the reader.
    public var title: String
    /// Its rows.
    public var rows: [PackRow]
}

/// One row: its key and every column's value.
public struct PackRow: Sendable, Hashable, Codable {
    /// The row's key (`id`, or the key columns joined by `/`).
    public var key: String
    /// Every column, by name.
    public var columns: [String: PackCell]
}

/// One value and where it comes from.
public struct PackCell: Sendable, Hashable, Codable {
    /// How the value was obtained.
    public enum Source: String, Sendable, Hashable, Codable {
        /// Stored in clear.
        case clear
        /// Decrypted from its ciphertext.
        case decrypted
        /// Decrypted, with passages removed at review.
        case redacted
        /// A blind-index search token: a keyed hash, not reversible; its presence only is given.
        case searchToken = "search-token"
        /// A member of staff (see ``AccessPack/staff``).
        case staff
        /// A team's code.
        case team
        /// Held but not given (see ``AccessPack/withheld``).
        case withheld
        /// Bytes, in hexadecimal.
        case bytes
    }

    /// The value as text; nil for SQL NULL.
    public var value: String?
    /// Where it comes from.
    public var source: Source
}

/// A member of staff, by role and team; by name only when the DPO decided so.
public struct PackStaff: Sendable, Hashable, Codable {
    /// The pack's reference (`staff-1`…), as cells and accesses name them.
    public var reference: String
    /// The role (`agent`, `manager`, `admin`, `dpo`…).
    public var role: String
    /// The team's code, if any.
    public var team: String?
    /// The name, only with staff names.
    public var name: String?
}

/// One access to the record, from the journal.
public struct PackConsultation: Sendable, Hashable, Codable {
    /// The journal's sequence number.
    public var sequence: UInt64
    /// When it happened (RFC 3339, UTC).
    public var occurredAt: String
    /// What was done (`read`, `update`, `export`, `subject-request`…).
    public var action: String
    /// Why (`care`, `coordination`…).
    public var purpose: String?
    /// How it ended (`success`, `denied`, `error`).
    public var result: String
    /// The code of a refusal or of an administrative step.
    public var reason: String?
    /// The program that recorded it.
    public var source: String
    /// What was accessed (`patient`, `episode`, `patient-history`…).
    public var objectType: String
    /// Who, by role and team.
    public var actorRole: String?
    public var actorTeam: String?
    /// The pack's reference of the member of staff, when known.
    public var staff: String?
    /// The login name, only with staff names.
    public var actorName: String?
    /// The entry's leaf hash (base64): what the proof proves is in the journal.
    public var leafHash: String
    /// The c2sp.org/tlog-proof@v1 inclusion proof against ``AccessPack/journal``'s checkpoint.
    public var proof: String
    /// The entry's canonical bytes (base64), only with staff names (they name the actor).
    public var entry: String?
}

/// The journal checkpoint the proofs are against.
public struct PackJournal: Sendable, Hashable, Codable {
    /// The log's origin.
    public var origin: String
    /// The checkpoint's number.
    public var checkpointID: Int64
    /// The tree size it covers: accesses with a smaller sequence number are listed.
    public var treeSize: UInt64
    /// The signed note.
    public var checkpoint: String
}

/// A passage removed at review.
public struct PackRedaction: Sendable, Hashable, Codable {
    public var table: String
    public var row: String
    public var column: String
    public var reason: RedactionReason
    /// How many places it was removed from (the value and its versions' snapshots).
    public var places: Int
}

/// A column held but not given.
public struct PackWithheld: Sendable, Hashable, Codable {
    public var table: String
    public var column: String
    public var reason: String
}
