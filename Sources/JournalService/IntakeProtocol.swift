public import Foundation
public import Journal

/// The local intake protocol (docs/journal.md): each frame is a 4-byte big-endian
/// length followed by that many bytes of a UTF-8 JSON object. A request is one
/// access event; the reply, a frame of the same form, is
/// `{"ok":true,"intake_id":N}` once the event is committed, or
/// `{"ok":false,"error":"journal.socket.<code>","message":"…"}`.
public enum IntakeProtocol {
    /// A refused request or frame.
    public struct Refusal: Error, Hashable, Sendable {
        /// The stable code, e.g. `journal.socket.unknown_field`.
        public let code: String
        /// What was wrong, naming the field.
        public let message: String
        /// True when the connection must close (the frame boundary is lost).
        public let closesConnection: Bool

        init(_ code: String, _ message: String, closesConnection: Bool = false) {
            self.code = "journal.socket." + code
            self.message = message
            self.closesConnection = closesConnection
        }
    }

    /// The fields a request may carry, by name: every intake column but `source`,
    /// which is the peer's (from its uid), never the request's.
    public static let acceptedFields: [String: IntakeColumn] = Dictionary(
        uniqueKeysWithValues: IntakeColumn.allCases.filter { $0 != .source }.map { ($0.name, $0) })

    /// The earliest `occurred_at` accepted.
    public static let earliestOccurrence = Date(timeIntervalSince1970: -2_208_988_800)  // 1900-01-01T00:00:00Z
    /// How far after the server's clock an `occurred_at` may lie (clocks of the same host drift little).
    public static let latestOccurrenceAhead: TimeInterval = 86_400

    /// Decodes a request frame's body into an event recorded under `source`.
    ///
    /// The frame is read strictly (``Journal/StrictJSON``: no key twice, no byte-order
    /// mark, no NUL); each text must be recordable as it is
    /// (``Journal/JournalText/problem(in:limit:)``: no control character, within its
    /// column's bound), since a program that sends a value the journal would have
    /// to alter is told so rather than have it altered; `occurred_at` lies between
    /// 1900 and a day after `now`.
    /// - Throws: ``Refusal`` naming the first problem.
    public static func event(from body: [UInt8], source: String, now: Date = Date()) throws -> AccessEvent {
        do throws(StrictJSON.Problem) {
            try StrictJSON.check(body)
        } catch .duplicateField(let path) {
            throw Refusal("duplicate_field", "field \(path) is given more than once")
        } catch .nul(let path) {
            throw Refusal("invalid_field", "\(path) contains a NUL character")
        } catch {
            throw Refusal("malformed_json", "the frame is not a JSON document: \(error)")
        }
        // JSONDecoder, not JSONSerialization, which drops a byte-order mark at the start of a string value.
        let fields: [String: String?]
        do {
            fields = try JSONDecoder().decode([String: String?].self, from: Data(body))
        } catch DecodingError.typeMismatch(_, let context) where !context.codingPath.isEmpty {
            throw Refusal("invalid_field", "\(JournalText.bounded(context.codingPath[0].stringValue, to: 64)) must be a string or null")
        } catch {
            throw Refusal("malformed_json", "the frame is not a JSON object")
        }
        var values: [IntakeColumn: String] = [:]
        for (key, value) in fields {
            guard let column = acceptedFields[key] else { throw Refusal("unknown_field", "unknown field \"\(JournalText.bounded(key, to: 64))\"") }
            guard let text = value else { continue }
            if let problem = JournalText.problem(in: text, limit: column.maximumLength) { throw Refusal("invalid_field", "\(key) \(problem)") }
            values[column] = text
        }
        func required(_ column: IntakeColumn) throws -> String {
            guard let value = values[column] else { throw Refusal("missing_field", "\(column.name) is required") }
            return value
        }
        guard let action = AccessAction(rawValue: try required(.action)) else { throw Refusal("invalid_field", "action is not a known action") }
        guard let result = AccessResult(rawValue: try required(.result)) else { throw Refusal("invalid_field", "result must be success, denied or error") }
        // The journal's own signing-key events decide what verify accepts; only the key tools write them.
        guard values[.objectType] != JournalVerifier.signingKeyObjectType else {
            throw Refusal("forbidden_field", "object_type journal-signing-key is reserved to osmose-keyd and osmosectl")
        }
        var occurredAt = now
        if let text = values[.occurredAt] {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let plain = ISO8601DateFormatter()
            guard let date = formatter.date(from: text) ?? plain.date(from: text) else {
                throw Refusal("invalid_field", "occurred_at must be an RFC 3339 time such as 2026-11-22T04:30:00.123Z")
            }
            guard date >= earliestOccurrence, date <= now.addingTimeInterval(latestOccurrenceAhead) else {
                throw Refusal("invalid_field", "occurred_at must lie between 1900-01-01 and a day from now")
            }
            occurredAt = date
        }
        var event = AccessEvent(
            occurredAt: occurredAt, source: source, requestID: try required(.requestID), action: action, objectType: try required(.objectType),
            result: result)
        event.actorUserID = try values[.actorUserID].map { try uuid($0, .actorUserID) }
        event.actorUsername = values[.actorUsername]
        event.actorRole = values[.actorRole]
        event.actorTeam = values[.actorTeam]
        event.objectID = values[.objectID]
        event.patientID = try values[.patientID].map { try uuid($0, .patientID) }
        if let purpose = values[.purpose] {
            guard let known = AccessPurpose(rawValue: purpose) else { throw Refusal("invalid_field", "purpose is not a known purpose") }
            event.purpose = known
        }
        event.reason = values[.reason]
        event.clientIP = try values[.clientIP].map { text in
            guard let address = JournalText.canonicalAddress(text) else { throw Refusal("invalid_field", "client_ip must be an IPv4 or IPv6 address") }
            return address
        }
        event.userAgent = values[.userAgent]
        let check = JournalEntry(
            sequence: 0, occurredAt: 0, sequencedAt: 0, source: source, requestID: event.requestID, actorUserID: event.actorUserID?.uuidString.lowercased(),
            actorUsername: event.actorUsername, actorRole: event.actorRole, actorTeam: event.actorTeam, action: action.rawValue,
            objectType: event.objectType, objectID: event.objectID, patientID: event.patientID?.uuidString.lowercased(), purpose: event.purpose?.rawValue,
            result: result.rawValue, reason: event.reason, clientIP: event.clientIP, userAgent: event.userAgent)
        do {
            try check.validate()
        } catch let error as EntryFormatError {
            throw Refusal("invalid_field", error.reason)
        }
        return event
    }

    private static func uuid(_ text: String, _ column: IntakeColumn) throws -> UUID {
        guard let value = UUID(uuidString: text) else { throw Refusal("invalid_field", "\(column.name) must be a UUID") }
        return value
    }

    /// A reply frame (length prefix included).
    public static func reply(_ object: [String: Any]) -> [UInt8] {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])).map(Array.init) ?? Array(#"{"ok":false}"#.utf8)
        return frame(body)
    }

    /// `body` behind its 4-byte big-endian length.
    public static func frame(_ body: [UInt8]) -> [UInt8] {
        let length = UInt32(body.count)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + body
    }

    /// The reply for a refusal.
    public static func reply(_ refusal: Refusal) -> [UInt8] {
        reply(["ok": false, "error": refusal.code, "message": refusal.message])
    }
}
