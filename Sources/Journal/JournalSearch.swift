public import Foundation
public import Store

/// A search of the journal by who acted, on which patient, how, why, with what
/// result and when: the security officer's investigation.
///
/// The database finds candidates through the entries' search columns, which are not
/// hashed; every hit is then decoded from its hashed canonical bytes and checked
/// against the filters again, so a search column changed after the fact can hide
/// an entry from the index but never make a search return an entry that does not
/// match (`osmosectl journal verify` names such a change).
public struct JournalSearch: Sendable, Hashable {
    /// The patient the entries concern.
    public var patientID: UUID?
    /// The acting user.
    public var actorUserID: UUID?
    /// The acting user's team code.
    public var actorTeam: String?
    /// The action.
    public var action: AccessAction?
    /// The purpose.
    public var purpose: AccessPurpose?
    /// How the attempt ended.
    public var result: AccessResult?
    /// Entries that occurred at or after this moment.
    public var occurredFrom: Date?
    /// Entries that occurred before this moment.
    public var occurredBefore: Date?
    /// At most this many entries: the newest ones that match.
    public var limit: Int

    /// A search; a filter left nil matches every entry.
    /// - Parameters:
    ///   - patientID: the patient the entries concern.
    ///   - actorUserID: the acting user.
    ///   - actorTeam: the acting user's team code.
    ///   - action: the action.
    ///   - purpose: the purpose.
    ///   - result: how the attempt ended.
    ///   - occurredFrom: the period's start, included.
    ///   - occurredBefore: the period's end, excluded.
    ///   - limit: at most this many entries, the newest that match.
    public init(
        patientID: UUID? = nil, actorUserID: UUID? = nil, actorTeam: String? = nil, action: AccessAction? = nil, purpose: AccessPurpose? = nil,
        result: AccessResult? = nil, occurredFrom: Date? = nil, occurredBefore: Date? = nil, limit: Int = 1000
    ) {
        self.patientID = patientID
        self.actorUserID = actorUserID
        self.actorTeam = actorTeam
        self.action = action
        self.purpose = purpose
        self.result = result
        self.occurredFrom = occurredFrom
        self.occurredBefore = occurredBefore
        self.limit = limit
    }

    /// The matching entries, oldest first: the newest `limit` candidates the search
    /// columns give, decoded from their canonical bytes, keeping those that match.
    /// - Throws: ``StoreError`` from the database; ``EntryFormatError`` when stored
    ///   bytes are not canonical.
    public func entries(on connection: isolated Connection) throws -> [JournalEntry] {
        try JournalDatabase.canonicalBytes(matching: self, on: connection).map(JournalEntry.init(canonical:)).filter(matches)
    }

    /// One page of a search's results, newest first.
    public struct Page: Sendable, Hashable {
        /// How many entries the search columns give (at most the search's limit): the results' length.
        public let candidateCount: Int
        /// The page's entries, newest first, decoded from their canonical bytes and
        /// checked against the filters.
        public let entries: [JournalEntry]
        /// The sequence numbers of the page's candidates whose canonical bytes do not
        /// match the filters: their search columns were changed after the fact
        /// (`osmosectl journal verify` names the change). They are not shown.
        public let mismatched: [UInt64]
    }

    /// A page of the matching entries: the newest `limit` candidates the search
    /// columns give are numbered from the newest, and only those at `positions` are
    /// read, decoded and checked again (the others' bytes are not sent).
    /// - Parameters:
    ///   - positions: the positions to read, 0 being the newest candidate (a range past
    ///     the candidates reads none, and still counts them).
    ///   - connection: the connection to read on.
    /// - Throws: ``StoreError`` from the database; ``EntryFormatError`` when stored
    ///   bytes are not canonical.
    public func page(_ positions: Range<Int>, on connection: isolated Connection) throws -> Page {
        let candidates = try JournalDatabase.candidates(matching: self, newest: positions, on: connection)
        var entries: [JournalEntry] = []
        var mismatched: [UInt64] = []
        for candidate in candidates {
            guard let bytes = candidate.canonical else { continue }
            let entry = try JournalEntry(canonical: bytes)
            if matches(entry) { entries.append(entry) } else { mismatched.append(candidate.sequence) }
        }
        return Page(candidateCount: candidates.count, entries: entries, mismatched: mismatched)
    }

    /// The purged months whose entries occurred in the search's period (every purged
    /// month when the period is open): their entries are not searched, they lie in
    /// the cold archives these name.
    /// - Throws: ``StoreError`` from the database.
    public func archivedRanges(on connection: isolated Connection) throws -> [ArchivedRange] {
        try JournalDatabase.archivedRanges(occurredFrom: occurredFrom.map(Self.microseconds), before: occurredBefore.map(Self.microseconds), on: connection)
    }

    /// True when the decoded `entry` satisfies every filter.
    public func matches(_ entry: JournalEntry) -> Bool {
        Self.same(entry.patientID, patientID) && Self.same(entry.actorUserID, actorUserID)
            && (actorTeam == nil || entry.actorTeam == actorTeam) && (action == nil || entry.action == action?.rawValue)
            && (purpose == nil || entry.purpose == purpose?.rawValue) && (result == nil || entry.result == result?.rawValue)
            && occurredFrom.map { entry.occurredAt >= Self.microseconds($0) } != false
            && occurredBefore.map { entry.occurredAt < Self.microseconds($0) } != false
    }

    /// True when no id is asked for, or the entry's id text is that id.
    private static func same(_ text: String?, _ id: UUID?) -> Bool {
        guard let id else { return true }
        return text == id.uuidString.lowercased()
    }

    /// `date` in microseconds since the Unix epoch, rounded as the database receives it.
    private static func microseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }
}
