public import Foundation
public import Store

/// What a care request's access event names, looked up for the journal only:
/// nothing here is returned to the client, and no scope is checked, so that a
/// refused request still names the patient it tried to reach.
extension CareStore {
    /// A record a request's path names.
    public enum PathRecord: Sendable, Hashable {
        /// `/v1/patients/{id}…`
        case patient(UUID)
        /// `/v1/episodes/{id}…`
        case episode(UUID)
        /// `/v1/transmissions/{id}…`
        case transmission(UUID)

        /// The record's id.
        public var id: UUID {
            switch self {
            case .patient(let id), .episode(let id), .transmission(let id): id
            }
        }
    }

    /// The patient `record` concerns: the patient itself, an episode's patient, a
    /// transmission's episode's patient; nil when the record does not exist.
    public func patientID(of record: PathRecord, on connection: isolated Connection) throws -> UUID? {
        switch record {
        case .patient(let id):
            return id
        case .episode(let id):
            return try connection.query("SELECT patient_id FROM care.episodes WHERE id = $1", [id]).singleRow()?.uuid("patient_id")
        case .transmission(let id):
            return try connection.query(
                "SELECT e.patient_id FROM care.transmissions t JOIN care.episodes e ON e.id = t.episode_id WHERE t.id = $1", [id]
            ).singleRow()?.uuid("patient_id")
        }
    }

    /// What a failed login's event records of a username that names no account: a
    /// keyed hash, never the text (a password typed in the username field must not
    /// stay for years in an append-only journal). `unknown:<key id>:<32 hex digits>`,
    /// the first 128 bits of the HMAC-SHA-256 of the username under blind-index key
    /// `<key id>` (case, accents and hyphens folded, as blind indexes are): the same
    /// name tried again gives the same record while that key is primary. No account
    /// name contains `:` (care.users' CHECK), so the two never meet.
    /// - Returns: `unknown` alone when no blind-index key is at hand.
    public func journalName(ofUnknownUsername username: String) -> String {
        guard let keyID = try? index.primaryKeyID(), let token = try? index.token(domain: "journal/unknown-username", parts: [username], keyID: keyID)
        else { return "unknown" }
        return "unknown:\(keyID):" + token.prefix(16).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
