public import Foundation
public import Store

/// What was done. The first seven are the care actions the design names; the
/// others are the suite's own administrative actions.
public enum AccessAction: String, Sendable, Codable, CaseIterable {
    case login, logout, read, create, update, delete, export
    case userAdmin = "user-admin"
    case keyAdmin = "key-admin"
    case journalAdmin = "journal-admin"
    case backupAdmin = "backup-admin"
    case retentionAdmin = "retention-admin"
    case subjectRequest = "subject-request"
}

/// Why patient data was touched (finalité). A request touching patient data must name one.
public enum AccessPurpose: String, Sendable, Codable, CaseIterable {
    case care, coordination, administration, audit
    case subjectRequest = "subject-request"
}

/// How the attempt ended.
public enum AccessResult: String, Sendable, Codable, CaseIterable {
    case success, denied, error
}

/// One access event, as written to `journal.intake`.
public struct AccessEvent: Sendable, Codable, Hashable {
    /// When it happened (UTC, microseconds).
    public var occurredAt: Date
    /// The program that recorded it, e.g. `osmose-care`.
    public var source: String
    /// The request's id, also returned to the client in `Osmose-Request-Id`.
    public var requestID: String
    /// The acting user, when known.
    public var actorUserID: UUID?
    /// The acting user's login name, when known (also for failed logins).
    public var actorUsername: String?
    /// The actor's role.
    public var actorRole: String?
    /// The actor's team code.
    public var actorTeam: String?
    /// What was done.
    public var action: AccessAction
    /// The kind of object (`patient`, `episode`, `transmission`, `session`, `user`…).
    public var objectType: String
    /// The object's id, when there is one.
    public var objectID: String?
    /// The patient concerned, when there is one.
    public var patientID: UUID?
    /// The declared purpose.
    public var purpose: AccessPurpose?
    /// The outcome.
    public var result: AccessResult
    /// A stable code for a denial or error (e.g. `care.forbidden`); never patient data.
    public var reason: String?
    /// The client's IP address.
    public var clientIP: String?
    /// The client's user agent; recorded cut to 512 code points (``JournalText/userAgentLimit``).
    public var userAgent: String?

    /// Creates an event; unspecified details are nil.
    public init(
        occurredAt: Date = Date(), source: String, requestID: String, action: AccessAction, objectType: String,
        result: AccessResult
    ) {
        self.occurredAt = occurredAt
        self.source = source
        self.requestID = requestID
        self.action = action
        self.objectType = objectType
        self.result = result
    }
}

extension Connection {
    /// Inserts `event` into `journal.intake` within the caller's transaction.
    ///
    /// The care role may only INSERT there; when even that is refused the caller's
    /// transaction fails, and with it the request: no event, no data.
    public func record(_ event: AccessEvent) throws {
        try query(IntakeColumn.insertStatement, IntakeColumn.values(of: event))
    }

    /// Inserts `event` and returns its intake id: for roles that may also read the
    /// intake (osmose-journald's socket); the care role may not, so ``record(_:)``
    /// asks for nothing back.
    public func recordReturningID(_ event: AccessEvent) throws -> Int64 {
        try query(IntakeColumn.insertStatement + " RETURNING id", IntakeColumn.values(of: event)).rows[0].int64("id")
    }
}

extension Connection {
    /// Inserts several events into `journal.intake` with one COPY, within the
    /// caller's transaction: one round trip for a whole group instead of one per event.
    public func record(_ events: [AccessEvent]) throws {
        guard events.count > 1 else {
            if let event = events.first { try record(event) }
            return
        }
        try copyIn(IntakeColumn.copyStatement) { writer in
            for event in events { try writer.writeRow(IntakeColumn.values(of: event)) }
        }
    }
}
