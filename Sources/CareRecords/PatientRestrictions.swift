public import Foundation
public import Store

/// A ground of GDPR art. 18(2) on which a restricted patient's record may still be
/// processed: what a caregiver names (header `Osmose-Restriction-Override`) to open it.
public enum RestrictionGround: String, Sendable, Codable, CaseIterable {
    /// The data subject consents.
    case consent
    /// The establishment, exercise or defence of legal claims.
    case legalClaims = "legal-claims"
    /// The protection of the rights of another natural or legal person.
    case protectionOfOthers = "protection-of-others"
    /// Important public interest of the Union or of a member state.
    case publicInterest = "public-interest"
}

/// Why a restriction ends (art. 18(1): the accuracy was verified, the objection
/// assessed; or the data subject consents, withdraws, or the legal claims ended).
public enum RestrictionLiftReason: String, Sendable, Codable, CaseIterable {
    case accuracyVerified = "accuracy-verified"
    case objectionAssessed = "objection-assessed"
    case dataSubjectConsent = "data-subject-consent"
    case requestWithdrawn = "request-withdrawn"
    case legalClaimsEnded = "legal-claims-ended"
}

/// A restriction of processing in force on a patient (GDPR art. 18).
public struct PatientRestriction: Sendable, Hashable, Codable {
    /// Its id.
    public let id: UUID
    /// The restricted patient.
    public let patientID: UUID
    /// The subject request that set it.
    public let subjectRequestID: UUID
    /// When it was set.
    public let restrictedAt: Date
}

/// An opening of a restricted record on a ground of art. 18(2), as reported to the DPO.
public struct RestrictionOverride: Sendable, Hashable, Codable {
    /// Its id.
    public let id: UUID
    /// The patient.
    public let patientID: UUID
    /// The care request's id (the journal event's `request_id`).
    public let careRequestID: String
    /// Who opened it: the user's login name, role and team.
    public let username: String
    public let role: String
    public let team: String?
    /// The ground named.
    public let ground: RestrictionGround
    /// What was done (e.g. `patient read`).
    public let endpoint: String
    /// When.
    public let occurredAt: Date
}

/// The restriction flags the care service enforces and the DPO sets and lifts
/// (table `care.patient_restrictions`, migration 0031). Every function runs in the
/// caller's transaction, on the connection's thread.
public enum PatientRestrictions {
    /// The restriction in force on `patient`, if any.
    public static func inForce(on patient: UUID, on connection: isolated Connection) throws -> PatientRestriction? {
        try connection.query(
            "SELECT id, patient_id, subject_request_id, restricted_at FROM care.patient_restrictions WHERE patient_id = $1 AND lifted_at IS NULL",
            [patient]
        ).singleRow().map(restriction(from:))
    }

    /// The patients among `patients` whose processing is restricted.
    public static func restricted(among patients: [UUID], on connection: isolated Connection) throws -> Set<UUID> {
        guard !patients.isEmpty else { return [] }
        let list = "{" + patients.map { $0.uuidString.lowercased() }.joined(separator: ",") + "}"
        return Set(
            try connection.query(
                "SELECT patient_id FROM care.patient_restrictions WHERE lifted_at IS NULL AND patient_id = ANY($1::uuid[])", [list]
            ).rows.map { try $0.uuid("patient_id") })
    }

    /// Sets a restriction on `patient` for subject request `request`.
    /// - Throws: ``CareError`` `.conflict` when one is already in force.
    public static func restrict(_ patient: UUID, request: UUID, by actor: String, on connection: isolated Connection) throws -> PatientRestriction {
        if try inForce(on: patient, on: connection) != nil {
            throw CareError(.conflict, "this patient's processing is already restricted")
        }
        let id = UUID()
        try connection.query(
            "INSERT INTO care.patient_restrictions (id, patient_id, subject_request_id, restricted_by) VALUES ($1, $2, $3, $4)",
            [id, patient, request, actor])
        guard let restriction = try inForce(on: patient, on: connection) else { throw CareError(.internalError, "the restriction was not recorded") }
        return restriction
    }

    /// Lifts the restriction in force on `patient`.
    /// - Returns: the restriction lifted.
    /// - Throws: ``CareError`` `.notFound` when none is in force.
    public static func lift(on patient: UUID, reason: RestrictionLiftReason, by actor: String, on connection: isolated Connection) throws -> PatientRestriction {
        guard let restriction = try inForce(on: patient, on: connection) else {
            throw CareError(.notFound, "this patient's processing is not restricted")
        }
        try connection.query(
            "UPDATE care.patient_restrictions SET lifted_at = clock_timestamp(), lifted_by = $2, lift_reason = $3 WHERE id = $1",
            [restriction.id, actor, reason.rawValue])
        return restriction
    }

    /// Records that `principal` opened the restricted record of `patient` on `ground`
    /// in care request `careRequestID`.
    public static func recordOverride(
        _ restriction: PatientRestriction, by principal: Principal, ground: RestrictionGround, careRequestID: String, endpoint: String,
        on connection: isolated Connection
    ) throws {
        try connection.query(
            """
            INSERT INTO care.restriction_overrides (id, restriction_id, patient_id, care_request_id, user_id, ground, endpoint)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """, [UUID(), restriction.id, restriction.patientID, careRequestID, principal.userID, ground.rawValue, endpoint])
    }

    /// The overrides not yet reported to the DPO, oldest first.
    public static func unreportedOverrides(on connection: isolated Connection) throws -> [RestrictionOverride] {
        try connection.query(
            """
            SELECT o.id, o.patient_id, o.care_request_id, u.username, u.role, t.code AS team, o.ground, o.endpoint, o.occurred_at
            FROM care.restriction_overrides o JOIN care.users u ON u.id = o.user_id LEFT JOIN care.teams t ON t.id = u.team_id
            WHERE o.reported_at IS NULL ORDER BY o.occurred_at, o.id
            """
        ).rows.map { row in
            guard let ground = RestrictionGround(rawValue: try row.string("ground")) else { throw CareError(.internalError, "stored ground is not valid") }
            return RestrictionOverride(
                id: try row.uuid("id"), patientID: try row.uuid("patient_id"), careRequestID: try row.string("care_request_id"),
                username: try row.string("username"), role: try row.string("role"), team: try row.optionalString("team"), ground: ground,
                endpoint: try row.string("endpoint"), occurredAt: try row.date("occurred_at"))
        }
    }

    /// The overrides from `since` on, newest first, at most `limit` (the security
    /// officer's alerts), reported to the DPO or not.
    public static func overrides(since: Date, limit: Int, on connection: isolated Connection) throws -> [RestrictionOverride] {
        try connection.query(
            """
            SELECT o.id, o.patient_id, o.care_request_id, u.username, u.role, t.code AS team, o.ground, o.endpoint, o.occurred_at
            FROM care.restriction_overrides o JOIN care.users u ON u.id = o.user_id LEFT JOIN care.teams t ON t.id = u.team_id
            WHERE o.occurred_at >= $1 ORDER BY o.occurred_at DESC, o.id LIMIT $2
            """, [since, Int64(max(0, limit))]
        ).rows.map { row in
            guard let ground = RestrictionGround(rawValue: try row.string("ground")) else { throw CareError(.internalError, "stored ground is not valid") }
            return RestrictionOverride(
                id: try row.uuid("id"), patientID: try row.uuid("patient_id"), careRequestID: try row.string("care_request_id"),
                username: try row.string("username"), role: try row.string("role"), team: try row.optionalString("team"), ground: ground,
                endpoint: try row.string("endpoint"), occurredAt: try row.date("occurred_at"))
        }
    }

    /// Marks `overrides` as reported.
    public static func markReported(_ overrides: [UUID], on connection: isolated Connection) throws {
        guard !overrides.isEmpty else { return }
        let list = "{" + overrides.map { $0.uuidString.lowercased() }.joined(separator: ",") + "}"
        try connection.query("UPDATE care.restriction_overrides SET reported_at = clock_timestamp() WHERE id = ANY($1::uuid[])", [list])
    }

    private static func restriction(from row: Row) throws -> PatientRestriction {
        PatientRestriction(
            id: try row.uuid("id"), patientID: try row.uuid("patient_id"), subjectRequestID: try row.uuid("subject_request_id"),
            restrictedAt: try row.date("restricted_at"))
    }
}
