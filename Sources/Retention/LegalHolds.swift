public import Foundation
public import Journal
public import Store

/// A legal hold (litigation, investigation): while in force, nothing it names is
/// archived-and-purged, pseudonymised or destroyed; the plan says which hold kept
/// what. Placed and released by the DPO; recorded in `ops.legal_holds` and the
/// access journal; never deleted.
public struct LegalHold: Sendable, Hashable, Codable {
    /// What a hold names.
    public enum Subject: Sendable, Hashable, Codable {
        /// A patient: the whole care record.
        case patient(UUID)
        /// One care episode (its patient's record is kept whole).
        case episode(UUID)
        /// The journal entries of a period (UTC days, inclusive), and the months and archives holding them.
        case journalPeriod(from: CivilDate, through: CivilDate)

        /// `patient`, `episode` or `journal-period`.
        public var scope: String {
            switch self {
            case .patient: "patient"
            case .episode: "episode"
            case .journalPeriod: "journal-period"
            }
        }

        /// How the hold names it, for people: `patient 0f8f…`, `journal 2025-01-01…2025-03-31`.
        public var label: String {
            switch self {
            case .patient(let id): "patient \(id.uuidString.lowercased())"
            case .episode(let id): "episode \(id.uuidString.lowercased())"
            case .journalPeriod(let from, let through): "journal \(from)…\(through)"
            }
        }
    }

    /// Its id.
    public let id: Int64
    /// What it names.
    public let subject: Subject
    /// Why (a case, an investigation); no patient data.
    public let reason: String
    /// The reference of the proceedings or request (court docket, ticket).
    public let reference: String
    /// Who placed it.
    public let placedBy: String
    /// When.
    public let placedAt: Date
    /// Who released it, when released.
    public let releasedBy: String?
    /// When it was released.
    public let releasedAt: Date?
    /// Why it was released.
    public let releaseReason: String?

    /// Whether it is still in force.
    public var inForce: Bool { releasedAt == nil }

    /// The span a clock checks, in the days of `timeZone`.
    public func span(in timeZone: TimeZone) -> HoldSpan {
        HoldSpan(id: id, placedOn: CivilDate(placedAt, in: timeZone), releasedOn: releasedAt.map { CivilDate($0, in: timeZone) })
    }
}

/// The legal holds' SQL (`ops.legal_holds`) and their journal events.
public enum LegalHolds {
    /// Places a hold and journals it, in the caller's transaction.
    /// - Parameters:
    ///   - subject: what it names; a patient or episode must exist, a period must be ordered.
    ///   - reason: 10 to 500 characters, no patient data.
    ///   - reference: 1 to 200 characters.
    ///   - actor: who places it (the DPO through osmosectl).
    /// - Throws: ``RetentionError/Code/invalidArgument`` or ``RetentionError/Code/notFound``.
    public static func place(
        _ subject: LegalHold.Subject, reason: String, reference: String, by actor: SystemActor, on connection: isolated Connection
    ) throws -> LegalHold {
        try requireText(reason, "--reason", 10...500)
        try requireText(reference, "--reference", 1...200)
        var patientID: UUID?
        var episodeID: UUID?
        var from: String?
        var through: String?
        switch subject {
        case .patient(let id):
            guard try !connection.query("SELECT 1 FROM care.patients WHERE id = $1", [id]).rows.isEmpty else {
                throw RetentionError(.notFound, "no patient \(id.uuidString.lowercased())")
            }
            patientID = id
        case .episode(let id):
            guard try !connection.query("SELECT 1 FROM care.episodes WHERE id = $1", [id]).rows.isEmpty else {
                throw RetentionError(.notFound, "no episode \(id.uuidString.lowercased())")
            }
            episodeID = id
        case .journalPeriod(let start, let end):
            guard start <= end else { throw RetentionError(.invalidArgument, "the period ends (\(end)) before it starts (\(start))") }
            from = start.description
            through = end.description
        }
        let row = try connection.query(
            """
            INSERT INTO ops.legal_holds (scope, patient_id, episode_id, period_from, period_through, reason, reference, placed_by)
            VALUES ($1, $2::uuid, $3::uuid, $4::date, $5::date, $6, $7, $8) RETURNING id
            """, [subject.scope, patientID, episodeID, from, through, reason, reference, actor.name]
        ).rows[0]
        let hold = try self.hold(try row.int64("id"), on: connection)
        try connection.record(
            AccessEvent.system(
                by: actor, action: .retentionAdmin, objectType: "legal-hold", objectID: "\(hold.id)", patientID: try patient(of: subject, on: connection),
                reason: "hold placed on \(subject.scope): \(reference)"))
        return hold
    }

    /// Releases a hold in force and journals it.
    /// - Throws: ``RetentionError/Code/notFound``; ``RetentionError/Code/refused`` when already released.
    public static func release(_ id: Int64, reason: String, by actor: SystemActor, on connection: isolated Connection) throws -> LegalHold {
        try requireText(reason, "--reason", 10...500)
        let hold = try self.hold(id, on: connection)
        guard hold.inForce else {
            throw RetentionError(.refused, "hold \(id) was already released at \(hold.releasedAt.map(Timestamp.text) ?? "?") by \(hold.releasedBy ?? "?")")
        }
        try connection.query(
            "UPDATE ops.legal_holds SET released_by = $2, released_at = clock_timestamp(), release_reason = $3 WHERE id = $1",
            [id, actor.name, reason])
        try connection.record(
            AccessEvent.system(
                by: actor, action: .retentionAdmin, objectType: "legal-hold", objectID: "\(id)", patientID: try patient(of: hold.subject, on: connection),
                reason: "hold released: \(hold.reference)"))
        return try self.hold(id, on: connection)
    }

    /// One hold.
    /// - Throws: ``RetentionError/Code/notFound``.
    public static func hold(_ id: Int64, on connection: isolated Connection) throws -> LegalHold {
        guard let hold = try holds(where: "id = $1", [id], on: connection).first else { throw RetentionError(.notFound, "no legal hold \(id)") }
        return hold
    }

    /// The holds in force, or every hold when `all`, oldest first.
    public static func list(all: Bool = false, on connection: isolated Connection) throws -> [LegalHold] {
        try holds(where: all ? "true" : "released_at IS NULL", [], on: connection)
    }

    private static func holds(where condition: String, _ parameters: [any PostgresEncodable], on connection: isolated Connection) throws -> [LegalHold] {
        try connection.query(
            """
            SELECT id, scope, patient_id, episode_id, period_from::text AS period_from, period_through::text AS period_through, reason, reference,
                placed_by, placed_at, released_by, released_at, release_reason
            FROM ops.legal_holds WHERE \(condition) ORDER BY id
            """, parameters
        ).rows.map { row in
            let subject: LegalHold.Subject
            switch try row.string("scope") {
            case "patient": subject = .patient(try row.uuid("patient_id"))
            case "episode": subject = .episode(try row.uuid("episode_id"))
            default:
                subject = .journalPeriod(from: try CivilDate(parsing: try row.string("period_from")), through: try CivilDate(parsing: try row.string("period_through")))
            }
            return LegalHold(
                id: try row.int64("id"), subject: subject, reason: try row.string("reason"), reference: try row.string("reference"),
                placedBy: try row.string("placed_by"), placedAt: try row.date("placed_at"), releasedBy: try row.optionalString("released_by"),
                releasedAt: try row.optionalDate("released_at"), releaseReason: try row.optionalString("release_reason"))
        }
    }

    /// The patient a subject concerns, for the journal event.
    private static func patient(of subject: LegalHold.Subject, on connection: isolated Connection) throws -> UUID? {
        switch subject {
        case .patient(let id): return id
        case .episode(let id): return try connection.query("SELECT patient_id FROM care.episodes WHERE id = $1", [id]).singleRow()?.uuid("patient_id")
        case .journalPeriod: return nil
        }
    }

    static func requireText(_ text: String, _ option: String, _ bounds: ClosedRange<Int>) throws {
        let length = text.trimmingCharacters(in: .whitespacesAndNewlines).unicodeScalars.count
        guard bounds.contains(length) else { throw RetentionError(.invalidArgument, "\(option) must be \(bounds.lowerBound) to \(bounds.upperBound) characters") }
        guard text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw RetentionError(.invalidArgument, "\(option) contains control characters")
        }
    }
}

/// UTC timestamps as the suite's records print them.
enum Timestamp {
    static func text(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
