import Foundation
import Journal
import Store
import Testing

/// osmose-journald writes each entry's canonical bytes straight from the intake row's
/// binary fields; they must be exactly those of the entry decoded from the same row.
@Suite("Canonical bytes straight from intake rows")
struct IntakeCanonicalTests {
    /// A random text: absent (if allowed), empty, ASCII, or with accents and emoji.
    func text(_ generator: inout SystemRandomNumberGenerator, optional: Bool) -> String? {
        switch Int.random(in: 0..<5, using: &generator) {
        case 0 where optional: return nil
        case 1: return ""
        case 2: return "séjour en psychiatrie de liaison — 🩺 \(Int.random(in: 0...999, using: &generator))"
        default: return String((0..<Int.random(in: 1...60, using: &generator)).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789-._".randomElement(using: &generator)! })
        }
    }

    /// One intake row in the binary COPY form of takeBatch's RETURNING list, decoded.
    func row(id: Int64, occurred: Int64, _ values: [String?], uuids: (String?, String?)) throws -> BinaryCopyDecoder.Row {
        var encoder = BinaryCopyEncoder()
        encoder.beginRow(fields: 17)
        encoder.int64(id)
        encoder.timestamp(microsecondsSinceUnixEpoch: occurred)
        for (offset, value) in values.enumerated() {
            switch offset + 2 {
            case 4: try encoder.uuid(uuids.0)
            case 11: try encoder.uuid(uuids.1)
            default: encoder.text(value)
            }
        }
        encoder.finish()
        var decoder = BinaryCopyDecoder()
        let rows = try decoder.feed(encoder.bytes)
        #expect(rows.count == 1)
        return rows[0]
    }

    @Test("2,000 random rows (absent, empty, ASCII and non-ASCII values, absent and present UUIDs): the same bytes as the decoded entry's")
    func sameBytes() throws {
        var generator = SystemRandomNumberGenerator()
        for index in 0..<2_000 {
            let required = [2, 3, 8, 9, 13]
            var values: [String?] = (2...16).map { column in text(&generator, optional: !required.contains(column)) }
            let uuids = (Bool.random() ? UUID().uuidString : nil, Bool.random() ? UUID().uuidString.lowercased() : nil)
            values[4 - 2] = nil
            values[11 - 2] = nil
            let occurred = Int64.random(in: 1_600_000_000_000_000...1_900_000_000_000_000, using: &generator)
            let sequenced = occurred + Int64.random(in: 0...5_000_000, using: &generator)
            let decoded = try row(id: Int64(index), occurred: occurred, values, uuids: uuids)
            let entry = JournalEntry(
                sequence: UInt64(index), occurredAt: occurred, sequencedAt: sequenced, source: values[0] ?? "", requestID: values[1] ?? "",
                actorUserID: try decoded.uuid(4), actorUsername: values[3], actorRole: values[4], actorTeam: values[5], action: values[6] ?? "",
                objectType: values[7] ?? "", objectID: values[8], patientID: try decoded.uuid(11), purpose: values[10], result: values[11] ?? "",
                reason: values[12], clientIP: values[13], userAgent: values[14])
            let direct = try JournalEntry.canonicalBytes(intakeRow: decoded, sequence: UInt64(index), occurredAt: occurred, sequencedAt: sequenced)
            #expect(direct == entry.canonicalBytes, "row \(index): \(values)")
            if direct != entry.canonicalBytes { return }
        }
    }

    @Test("A text column that is not UTF-8, or a uuid column that is not 16 bytes, is refused")
    func refused() throws {
        var encoder = BinaryCopyEncoder()
        encoder.beginRow(fields: 17)
        encoder.int64(1)
        encoder.timestamp(microsecondsSinceUnixEpoch: 1_700_000_000_000_000)
        encoder.bytea([0xC3, 0x28])  // source: an invalid UTF-8 sequence
        for _ in 3...16 { encoder.null() }
        encoder.finish()
        var decoder = BinaryCopyDecoder()
        let bad = try decoder.feed(encoder.bytes)[0]
        #expect(throws: EntryFormatError.self) { try JournalEntry.canonicalBytes(intakeRow: bad, sequence: 0, occurredAt: 0, sequencedAt: 0) }

        var short = BinaryCopyEncoder()
        short.beginRow(fields: 17)
        short.int64(1)
        short.timestamp(microsecondsSinceUnixEpoch: 1_700_000_000_000_000)
        short.text("osmose-care")
        short.text("r")
        short.bytea([1, 2, 3])  // actor_user_id: 3 bytes
        for _ in 5...16 { short.null() }
        short.finish()
        var second = BinaryCopyDecoder()
        let shortRow = try second.feed(short.bytes)[0]
        #expect(throws: EntryFormatError.self) { try JournalEntry.canonicalBytes(intakeRow: shortRow, sequence: 0, occurredAt: 0, sequencedAt: 0) }
    }
}
