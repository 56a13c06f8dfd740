public import Store

/// The columns of `journal.intake` that an access event fills, declared once, in
/// the table's order (migration 0002): the INSERT and COPY of ``AccessEvent``s, the
/// `RETURNING` list with which osmose-journald takes a batch, the canonical bytes
/// made from a taken row and the fields the intake socket accepts are all derived
/// from this declaration. A test holds it equal to the live table, so a migration
/// that adds a column fails until the column is declared here.
public enum IntakeColumn: Int, CaseIterable, Sendable {
    case occurredAt, source, requestID, actorUserID, actorUsername, actorRole, actorTeam, action, objectType, objectID, patientID, purpose,
        result, reason, clientIP, userAgent

    /// The column's PostgreSQL type.
    public enum Kind: Sendable, Hashable {
        /// `timestamptz`.
        case timestamp
        /// `text`.
        case text
        /// `uuid`.
        case uuid
        /// `inet` (a host address; read back in the form `abbrev()` prints).
        case inet
    }

    /// The columns of `journal.intake` that the database fills itself, never an event.
    public static let databaseFilled = ["id", "received_at"]

    /// The column's name in the table.
    public var name: String {
        switch self {
        case .occurredAt: "occurred_at"
        case .source: "source"
        case .requestID: "request_id"
        case .actorUserID: "actor_user_id"
        case .actorUsername: "actor_username"
        case .actorRole: "actor_role"
        case .actorTeam: "actor_team"
        case .action: "action"
        case .objectType: "object_type"
        case .objectID: "object_id"
        case .patientID: "patient_id"
        case .purpose: "purpose"
        case .result: "result"
        case .reason: "reason"
        case .clientIP: "client_ip"
        case .userAgent: "user_agent"
        }
    }

    /// The column's type.
    public var kind: Kind {
        switch self {
        case .occurredAt: .timestamp
        case .actorUserID, .patientID: .uuid
        case .clientIP: .inet
        default: .text
        }
    }

    /// True for a `NOT NULL` column.
    public var isRequired: Bool {
        switch self {
        case .occurredAt, .source, .requestID, .action, .objectType, .result: true
        default: false
        }
    }

    /// The lengths the table's CHECK allows, in code points (PostgreSQL's `length()`),
    /// or nil when no CHECK bounds the length (vocabularies, patterns, other types).
    public var lengthBound: ClosedRange<Int>? {
        switch self {
        case .requestID: 1...128
        case .actorUsername, .objectID: 0...128
        case .actorTeam: 0...64
        case .reason: 0...200
        case .userAgent: 0...512
        default: nil
        }
    }

    /// The longest value the table's CHECK allows, in code points (`Int.max` when unbounded).
    public var maximumLength: Int { lengthBound?.upperBound ?? Int.max }

    /// Where the value lies in an entry's canonical bytes (format version 1, fixed
    /// forever): one of the fifteen fields, or nil for `occurred_at`, which is in the
    /// fixed header.
    public var canonicalField: CanonicalScan.Field? {
        switch self {
        case .occurredAt: nil
        case .source: .source
        case .requestID: .requestID
        case .actorUserID: .actorUserID
        case .actorUsername: .actorUsername
        case .actorRole: .actorRole
        case .actorTeam: .actorTeam
        case .action: .action
        case .objectType: .objectType
        case .objectID: .objectID
        case .patientID: .patientID
        case .purpose: .purpose
        case .result: .result
        case .reason: .reason
        case .clientIP: .clientIP
        case .userAgent: .userAgent
        }
    }

    /// The column's value in `event`, as the INSERT and the COPY send it. Every text
    /// column with a length bound goes through ``JournalText/bounded(_:for:)``, the
    /// last guard behind the writers that already bound what they record: a NUL or
    /// an over-long text never makes the insert, and with it the request, fail.
    /// Vocabularies and patterns (source, action, object type, role, purpose,
    /// result) are the writer's own values: one out of its vocabulary is refused
    /// by the table (fail closed).
    public func value(in event: AccessEvent) -> any PostgresEncodable {
        switch self {
        case .occurredAt: event.occurredAt
        case .source: event.source
        case .requestID: JournalText.bounded(event.requestID, for: self)
        case .actorUserID: event.actorUserID
        case .actorUsername: event.actorUsername.map { JournalText.bounded($0, for: self) }
        case .actorRole: event.actorRole
        case .actorTeam: event.actorTeam.map { JournalText.bounded($0, for: self) }
        case .action: event.action.rawValue
        case .objectType: event.objectType
        case .objectID: event.objectID.map { JournalText.bounded($0, for: self) }
        case .patientID: event.patientID
        case .purpose: event.purpose?.rawValue
        case .result: event.result.rawValue
        case .reason: event.reason.map { JournalText.bounded($0, for: self) }
        case .clientIP: event.clientIP
        case .userAgent: event.userAgent.map { JournalText.bounded($0, for: self) }
        }
    }

    /// The column's position in ``JournalDatabase/takeBatch(on:state:limit:now:above:)``'s
    /// `RETURNING` list, which starts with the intake id.
    var takenPosition: Int { 1 + rawValue }

    /// The expression that returns the column from a taken row (alias `i`): an
    /// address in the text form the canonical bytes hold.
    var takenExpression: String { kind == .inet ? "abbrev(i.\(name))" : "i.\(name)" }

    /// The column list of the INSERT and the COPY, in declaration order.
    static let columnList = allCases.map(\.name).joined(separator: ", ")

    /// The INSERT of one event; its parameters are ``value(in:)`` of every column, in order.
    static let insertStatement =
        "INSERT INTO journal.intake (\(columnList)) VALUES ("
        + allCases.enumerated().map { offset, column in
            switch column.kind {
            case .uuid: "$\(offset + 1)::uuid"
            case .inet: "$\(offset + 1)::inet"
            case .timestamp, .text: "$\(offset + 1)"
            }
        }.joined(separator: ", ") + ")"

    /// The COPY of several events, rows of ``value(in:)`` of every column, in order.
    static let copyStatement = "COPY journal.intake (\(columnList)) FROM STDIN"

    /// What ``JournalDatabase/takeBatch(on:state:limit:now:above:)`` returns of each
    /// taken row: its id, then every column (positions ``takenPosition``).
    static let takenList = (["i.id"] + allCases.map(\.takenExpression)).joined(separator: ", ")

    /// The parameters of one event's INSERT or COPY row.
    static func values(of event: AccessEvent) -> [any PostgresEncodable] {
        allCases.map { $0.value(in: event) }
    }
}
