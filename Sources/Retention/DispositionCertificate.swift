public import Foundation
import Journal
public import Store

/// What a run did with one item of its plan.
public struct ItemOutcome: Sendable, Hashable, Codable {
    /// Done, or skipped (no longer due, held, already done elsewhere).
    public enum Outcome: String, Sendable, Hashable, Codable {
        case done, skipped
    }

    /// The item's key.
    public let key: String
    /// Done or skipped.
    public let outcome: Outcome
    /// What was done (an archive's digest, a pseudonym's key) or why it was skipped; no patient data.
    public let detail: String
    /// Values removed (encrypted values and tokens erased, rows removed, entries purged).
    public let valuesRemoved: Int64
    /// SHA-256 of what was removed, as it was stored, when the class gives one.
    public let removedSHA256: String?

    /// An outcome.
    public init(key: String, outcome: Outcome, detail: String, valuesRemoved: Int64 = 0, removedSHA256: String? = nil) {
        self.key = key
        self.outcome = outcome
        self.detail = String(detail.unicodeScalars.prefix(500).map(Character.init))
        self.valuesRemoved = valuesRemoved
        self.removedSHA256 = removedSHA256
    }

    enum CodingKeys: String, CodingKey {
        case key, outcome, detail
        case valuesRemoved = "values_removed"
        case removedSHA256 = "removed_sha256"
    }
}

/// The disposition certificate of a finished run: per item, what was done under
/// which rule, with the digest of what was removed; totals per class and rule; the
/// plan and its approval. Kept in `ops.retention_certificates` (and its SHA-256 in
/// the access journal) after the data is gone.
public struct DispositionCertificate: Sendable, Hashable, Codable {
    /// `osmose-disposition-certificate`.
    public var format = "osmose-disposition-certificate"
    /// 1.
    public var version = 1
    /// The run.
    public var run: Int64
    /// The plan applied.
    public var plan: PlanReference
    /// The approval: the DPO's, or the policy setting that let the daemon act alone.
    public var approval: Approval
    /// Who applied it.
    public var appliedBy: String
    /// When the run started and finished (RFC 3339, UTC).
    public var startedAt: String
    public var finishedAt: String
    /// SHA-256 of the retention policy file in force when the run finished.
    public var policySHA256AtApply: String
    /// Per class, action and rule: items done and skipped, values removed.
    public var totals: [Total]
    /// Every item of the plan with its outcome.
    public var items: [Entry]

    /// The plan a certificate is for.
    public struct PlanReference: Sendable, Hashable, Codable {
        public var id: Int64
        public var sha256: String
        public var kind: RetentionPlan.Kind
        public var asOf: CivilDate
        public var policySHA256: String

        enum CodingKeys: String, CodingKey {
            case id, sha256, kind
            case asOf = "as_of"
            case policySHA256 = "policy_sha256"
        }
    }

    /// Who allowed the run.
    public struct Approval: Sendable, Hashable, Codable {
        /// The approver's name, or `automatic`.
        public var approver: String
        /// Who recorded the approval, or the policy setting for an automatic plan.
        public var recordedBy: String
        /// When, for an approval.
        public var approvedAt: String?
        /// The digest approved.
        public var sha256: String?

        enum CodingKeys: String, CodingKey {
            case approver, sha256
            case recordedBy = "recorded_by"
            case approvedAt = "approved_at"
        }
    }

    /// One line of totals.
    public struct Total: Sendable, Hashable, Codable {
        public var dataClass: DataClass
        public var action: String
        public var rule: String
        public var done: Int
        public var skipped: Int
        public var valuesRemoved: Int64

        enum CodingKeys: String, CodingKey {
            case action, rule, done, skipped
            case dataClass = "class"
            case valuesRemoved = "values_removed"
        }
    }

    /// One item and its outcome.
    public struct Entry: Sendable, Hashable, Codable {
        public var key: String
        public var dataClass: DataClass
        public var action: String
        public var rule: String
        public var dueOn: CivilDate
        public var outcome: ItemOutcome.Outcome
        public var detail: String
        public var valuesRemoved: Int64
        public var removedSHA256: String?

        enum CodingKeys: String, CodingKey {
            case key, action, rule, outcome, detail
            case dataClass = "class"
            case dueOn = "due_on"
            case valuesRemoved = "values_removed"
            case removedSHA256 = "removed_sha256"
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, version, run, plan, approval, totals, items
        case appliedBy = "applied_by"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case policySHA256AtApply = "policy_sha256_at_apply"
    }

    /// The certificate of `plan`'s run from the outcomes recorded.
    static func make(
        run: Int64, stored: StoredPlan, outcomes: [String: ItemOutcome], appliedBy: String, startedAt: Date, finishedAt: Date, policySHA256: String
    ) -> DispositionCertificate {
        let plan = stored.plan
        let entries = plan.items.map { item in
            let outcome = outcomes[item.key]
            return Entry(
                key: item.key, dataClass: item.dataClass, action: item.action.rawValue, rule: item.rule, dueOn: item.dueOn, outcome: outcome?.outcome ?? .skipped,
                detail: outcome?.detail ?? "no outcome recorded", valuesRemoved: outcome?.valuesRemoved ?? 0, removedSHA256: outcome?.removedSHA256)
        }
        var totals: [String: Total] = [:]
        for entry in entries {
            let key = "\(entry.dataClass.order)|\(entry.action)|\(entry.rule)"
            var total = totals[key] ?? Total(dataClass: entry.dataClass, action: entry.action, rule: entry.rule, done: 0, skipped: 0, valuesRemoved: 0)
            if entry.outcome == .done { total.done += 1 } else { total.skipped += 1 }
            total.valuesRemoved += entry.valuesRemoved
            totals[key] = total
        }
        let approval =
            stored.approval.map {
                Approval(approver: $0.approverName, recordedBy: $0.approvedBy, approvedAt: Timestamp.text($0.approvedAt), sha256: $0.sha256)
            } ?? Approval(approver: "automatic", recordedBy: "retention.yaml journal.automatic: true", approvedAt: nil, sha256: nil)
        return DispositionCertificate(
            run: run,
            plan: PlanReference(id: stored.id, sha256: stored.sha256, kind: plan.kind, asOf: plan.asOf, policySHA256: plan.policySHA256),
            approval: approval, appliedBy: appliedBy, startedAt: Timestamp.text(startedAt), finishedAt: Timestamp.text(finishedAt),
            policySHA256AtApply: policySHA256, totals: totals.sorted { $0.key < $1.key }.map(\.value), items: entries)
    }

    /// The canonical text (sorted keys, no insignificant space), whose SHA-256 is recorded and journaled.
    public func canonicalText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Reads a stored certificate.
    public static func parse(_ text: String) throws -> DispositionCertificate {
        do {
            return try JSONDecoder().decode(DispositionCertificate.self, from: Data(text.utf8))
        } catch {
            throw RetentionError(.invalidArgument, "the stored certificate is not readable")
        }
    }
}

/// A stored certificate, as listed.
public struct CertificateRecord: Sendable, Hashable {
    /// The run.
    public let run: Int64
    /// The plan.
    public let plan: Int64
    /// When it was issued.
    public let issuedAt: Date
    /// Its SHA-256 (also in the journal event that announced it).
    public let sha256: String
    /// The certificate.
    public let certificate: DispositionCertificate
}

/// Certificates in `ops.retention_certificates`.
public enum Certificates {
    /// Every certificate, newest first.
    public static func list(on connection: isolated Connection) throws -> [CertificateRecord] {
        try records(where: "true", [], on: connection)
    }

    /// The certificate of run `run`.
    /// - Throws: ``RetentionError/Code/notFound``.
    public static func certificate(run: Int64, on connection: isolated Connection) throws -> CertificateRecord {
        guard let record = try records(where: "run_id = $1", [run], on: connection).first else {
            throw RetentionError(.notFound, "no certificate for run \(run) (a run gets one when it finishes)")
        }
        return record
    }

    private static func records(where condition: String, _ parameters: [any PostgresEncodable], on connection: isolated Connection) throws -> [CertificateRecord] {
        try connection.query(
            "SELECT run_id, plan_id, issued_at, document, sha256 FROM ops.retention_certificates WHERE \(condition) ORDER BY run_id DESC", parameters
        ).rows.map { row in
            let text = try row.string("document")
            let digest = try row.string("sha256")
            guard RetentionPlan.digest(text) == digest else {
                throw RetentionError(.planModified, "the certificate of run \(try row.int64("run_id")) no longer hashes to its recorded digest")
            }
            return CertificateRecord(
                run: try row.int64("run_id"), plan: try row.int64("plan_id"), issuedAt: try row.date("issued_at"), sha256: digest,
                certificate: try DispositionCertificate.parse(text))
        }
    }

    /// Stores a certificate, finishes its run and journals its digest, in the caller's transaction.
    static func issue(_ certificate: DispositionCertificate, by actor: SystemActor, on connection: isolated Connection) throws -> String {
        let text = try certificate.canonicalText()
        let digest = RetentionPlan.digest(text)
        try connection.query(
            "INSERT INTO ops.retention_certificates (run_id, plan_id, document, sha256) VALUES ($1, $2, $3, $4)",
            [certificate.run, certificate.plan.id, text, digest])
        try connection.query("UPDATE ops.retention_runs SET state = 'finished', finished_at = clock_timestamp() WHERE id = $1", [certificate.run])
        try connection.record(
            AccessEvent.system(
                by: actor, action: .retentionAdmin, objectType: "retention-certificate", objectID: "\(certificate.run)",
                reason: "run \(certificate.run) of plan \(certificate.plan.id) finished: certificate sha256 \(digest)"))
        return digest
    }
}
