public import Foundation
public import Journal
public import Store

/// The DPO's approval of a plan's digest.
public struct PlanApproval: Sendable, Hashable, Codable {
    /// The digest approved.
    public let sha256: String
    /// The DPO's name, as given.
    public let approverName: String
    /// Who ran the approval (the operator's identity).
    public let approvedBy: String
    /// When.
    public let approvedAt: Date
}

/// A plan as stored, with its approval and its run, if any.
public struct StoredPlan: Sendable, Hashable {
    /// Its id.
    public let id: Int64
    /// Its SHA-256, recorded when stored.
    public let sha256: String
    /// Who computed it.
    public let computedBy: String
    /// The plan (read back from the stored text, whose digest was checked).
    public let plan: RetentionPlan
    /// The approval, if approved.
    public let approval: PlanApproval?
    /// Its run's id and whether it finished, if a run started.
    public let run: (id: Int64, finished: Bool)?

    public static func == (lhs: StoredPlan, rhs: StoredPlan) -> Bool { lhs.id == rhs.id && lhs.sha256 == rhs.sha256 }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }

    /// `computed`, `approved`, `running`, `applied`, or `preview`.
    public var state: String {
        if let run { return run.finished ? "applied" : "running" }
        if plan.kind == .preview { return "preview" }
        if plan.kind == .automatic { return "automatic" }
        return approval == nil ? "awaiting approval" : "approved"
    }
}

/// Plans and approvals in `ops.retention_plans` and `ops.retention_approvals`.
public enum PlanStore {
    /// Stores a plan and returns it with its id and digest.
    public static func save(_ plan: RetentionPlan, computedBy: String, on connection: isolated Connection) throws -> StoredPlan {
        let text = try plan.canonicalText()
        let digest = RetentionPlan.digest(text)
        let id = try connection.query(
            """
            INSERT INTO ops.retention_plans (kind, as_of, computed_by, policy_sha256, item_count, document, sha256)
            VALUES ($1, $2::date, $3, $4, $5, $6, $7) RETURNING id
            """, [plan.kind.rawValue, plan.asOf.description, computedBy, plan.policySHA256, plan.items.count, text, digest]
        ).rows[0].int64("id")
        return StoredPlan(id: id, sha256: digest, computedBy: computedBy, plan: plan, approval: nil, run: nil)
    }

    /// Reads a plan back, refusing one whose stored text no longer hashes to its recorded digest.
    /// - Throws: ``RetentionError/Code/notFound``, ``RetentionError/Code/planModified``.
    public static func load(_ id: Int64, on connection: isolated Connection) throws -> StoredPlan {
        guard let row = try connection.query(
            """
            SELECT p.id, p.computed_by, p.document, p.sha256, a.sha256 AS approved_sha256, a.approver_name, a.approved_by, a.approved_at,
                   r.id AS run_id, r.state AS run_state
            FROM ops.retention_plans p LEFT JOIN ops.retention_approvals a ON a.plan_id = p.id LEFT JOIN ops.retention_runs r ON r.plan_id = p.id
            WHERE p.id = $1
            """, [id]
        ).singleRow() else { throw RetentionError(.notFound, "no retention plan \(id)") }
        let text = try row.string("document")
        let recorded = try row.string("sha256")
        guard RetentionPlan.digest(text) == recorded else {
            throw RetentionError(.planModified, "plan \(id) was changed after it was stored: its text no longer hashes to \(recorded); nothing was done")
        }
        let approval = try row.optionalString("approved_sha256").map { digest in
            PlanApproval(
                sha256: digest, approverName: try row.string("approver_name"), approvedBy: try row.string("approved_by"),
                approvedAt: try row.date("approved_at"))
        }
        let run = try row.optionalString("run_id").map { _ in (try row.int64("run_id"), try row.string("run_state") == "finished") }
        return StoredPlan(id: id, sha256: recorded, computedBy: try row.string("computed_by"), plan: try RetentionPlan.parse(text), approval: approval, run: run)
    }

    /// The most recent plans, newest first.
    public static func recent(limit: Int = 50, on connection: isolated Connection) throws -> [StoredPlan] {
        try connection.query("SELECT id FROM ops.retention_plans ORDER BY id DESC LIMIT $1", [limit]).rows.map { try load(try $0.int64("id"), on: connection) }
    }

    /// Plans that may be applied and are not finished: approved reviewed plans and
    /// automatic ones, oldest first.
    public static func applicable(on connection: isolated Connection) throws -> [Int64] {
        try connection.query(
            """
            SELECT p.id FROM ops.retention_plans p LEFT JOIN ops.retention_runs r ON r.plan_id = p.id
            WHERE (r.id IS NULL OR r.state = 'running')
              AND (p.kind = 'automatic' OR (p.kind = 'reviewed' AND EXISTS (SELECT 1 FROM ops.retention_approvals a WHERE a.plan_id = p.id)))
            ORDER BY p.id
            """
        ).rows.map { try $0.int64("id") }
    }

    /// Records the DPO's approval of plan `id`'s digest, and journals it.
    /// - Parameters:
    ///   - id: the plan.
    ///   - sha256: the digest the DPO read and approves (hex).
    ///   - approverName: the DPO's name, 3 to 200 characters.
    ///   - actor: who runs the approval (role `dpo`).
    ///   - now: the time compared with the plan's validity.
    /// - Throws: ``RetentionError`` — `invalid_argument` for a malformed digest or
    ///   name; `not_found`; `plan_modified` when the stored plan was edited;
    ///   `digest_mismatch` when the digest is another plan's; `refused` for a
    ///   preview, an automatic plan, a plan already approved or older than
    ///   ``RetentionPlan/validityDays``. Nothing is recorded then.
    public static func approve(
        _ id: Int64, sha256: String, approverName: String, by actor: SystemActor, now: Date = Date(), on connection: isolated Connection
    ) throws -> PlanApproval {
        let digest = sha256.lowercased()
        guard digest.count == 64, digest.allSatisfy(\.isHexDigit) else {
            throw RetentionError(.invalidArgument, "--sha256 must be the plan's 64-hexadecimal-digit digest, as `osmosectl retention plan` prints it")
        }
        try LegalHolds.requireText(approverName, "--approver", 3...200)
        try connection.query("SELECT 1 FROM ops.retention_plans WHERE id = $1 FOR UPDATE", [id])
        let stored = try load(id, on: connection)
        guard digest == stored.sha256 else {
            throw RetentionError(
                .digestMismatch, "\(digest) is not plan \(id)'s digest (\(stored.sha256)): check that you approve the plan you reviewed; nothing was recorded")
        }
        switch stored.plan.kind {
        case .preview: throw RetentionError(.refused, "plan \(id) is a preview for \(stored.plan.asOf): only a plan for today can be approved")
        case .automatic: throw RetentionError(.refused, "plan \(id) is osmose-retentiond's automatic plan: it needs no approval")
        case .reviewed: break
        }
        if let approval = stored.approval {
            throw RetentionError(.refused, "plan \(id) was already approved by \(approval.approverName) at \(Timestamp.text(approval.approvedAt))")
        }
        let computed = try connection.query("SELECT computed_at FROM ops.retention_plans WHERE id = $1", [id]).rows[0].date("computed_at")
        guard now.timeIntervalSince(computed) <= Double(RetentionPlan.validityDays) * 86_400 else {
            throw RetentionError(.refused, "plan \(id) is older than \(RetentionPlan.validityDays) days: compute a new plan (osmosectl retention plan) and approve that one")
        }
        try connection.query(
            "INSERT INTO ops.retention_approvals (plan_id, sha256, approver_name, approved_by) VALUES ($1, $2, $3, $4)",
            [id, digest, approverName, actor.name])
        try connection.record(
            AccessEvent.system(
                by: actor, action: .retentionAdmin, objectType: "retention-plan", objectID: "\(id)",
                reason: "plan \(id) approved: sha256 \(digest) by \(approverName)"))
        return try load(id, on: connection).approval!
    }
}
