import Foundation
import Journal
import Store
import Testing
import TestSupport

/// osmose-journald writes each entry's canonical bytes straight from the intake row's
/// binary fields; they must be exactly those of the entry decoded from the same row.
@Suite("Canonical bytes straight from intake rows")
struct IntakeCanonicalTests {
    /// A random text: absent (if allowed), empty, ASCII, or with accents and emoji.
    func text(_ generator: inout SeededGenerator, optional: Bool) -> String? {
        switch Int.random(in: 0..<5, using: &generator) {
        case 0 where optional: return nil
        case 1: return ""
        case 2: return "séjour en psychiatrie de liaison — 🩺 \(Int.random(in: 0...999, using: &generator))"
        default: return String((0..<Int.random(in: 1...60, using: &generator)).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789-._".randomElement(using: &generator)! })
        }
    }

    /// One intake row in the binary COPY form of takeBatch's RETURNING list (the id,
    /// then every declared column in order), decoded.
    func row(id: Int64, occurred: Int64, _ values: [IntakeColumn: String]) throws -> BinaryCopyDecoder.Row {
        var encoder = BinaryCopyEncoder()
        encoder.beginRow(fields: 1 + IntakeColumn.allCases.count)
        encoder.int64(id)
        for column in IntakeColumn.allCases {
            switch column.kind {
            case .timestamp: encoder.timestamp(microsecondsSinceUnixEpoch: occurred)
            case .uuid: try encoder.uuid(values[column])
            case .text, .inet: encoder.text(values[column])
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
        let seed = TestSeed.current(test: "IntakeCanonicalTests.sameBytes")
        var generator = SeededGenerator(seed: seed)
        for index in 0..<2_000 {
            var values: [IntakeColumn: String] = [:]
            for column in IntakeColumn.allCases {
                switch column.kind {
                case .timestamp: continue
                case .uuid:
                    guard Bool.random(using: &generator) else { continue }
                    let uuid = UUID.random(using: &generator).uuidString
                    values[column] = Bool.random(using: &generator) ? uuid : uuid.lowercased()
                case .text, .inet: values[column] = text(&generator, optional: !column.isRequired)
                }
            }
            let occurred = Int64.random(in: 1_600_000_000_000_000...1_900_000_000_000_000, using: &generator)
            let sequenced = occurred + Int64.random(in: 0...5_000_000, using: &generator)
            let decoded = try row(id: Int64(index), occurred: occurred, values)
            let entry = JournalEntry(
                sequence: UInt64(index), occurredAt: occurred, sequencedAt: sequenced, source: values[.source] ?? "", requestID: values[.requestID] ?? "",
                actorUserID: values[.actorUserID]?.lowercased(), actorUsername: values[.actorUsername], actorRole: values[.actorRole],
                actorTeam: values[.actorTeam], action: values[.action] ?? "", objectType: values[.objectType] ?? "", objectID: values[.objectID],
                patientID: values[.patientID]?.lowercased(), purpose: values[.purpose], result: values[.result] ?? "", reason: values[.reason],
                clientIP: values[.clientIP], userAgent: values[.userAgent])
            let direct = try JournalEntry.canonicalBytes(intakeRow: decoded, sequence: UInt64(index), occurredAt: occurred, sequencedAt: sequenced)
            #expect(direct == entry.canonicalBytes, "row \(index) (seed \(seed)): \(values)")
            if direct != entry.canonicalBytes { return }
        }
    }

    @Test("A text column that is not UTF-8, or a uuid column that is not 16 bytes, is refused")
    func refused() throws {
        /// A row whose columns are all NULL but those `fill` writes.
        func row(_ fill: (IntakeColumn, inout BinaryCopyEncoder) -> Bool) throws -> BinaryCopyDecoder.Row {
            var encoder = BinaryCopyEncoder()
            encoder.beginRow(fields: 1 + IntakeColumn.allCases.count)
            encoder.int64(1)
            for column in IntakeColumn.allCases where !fill(column, &encoder) { encoder.null() }
            encoder.finish()
            var decoder = BinaryCopyDecoder()
            return try decoder.feed(encoder.bytes)[0]
        }
        let bad = try row { column, encoder in
            switch column {
            case .occurredAt: encoder.timestamp(microsecondsSinceUnixEpoch: 1_700_000_000_000_000)
            case .source: encoder.bytea([0xC3, 0x28])  // an invalid UTF-8 sequence
            default: return false
            }
            return true
        }
        #expect(throws: EntryFormatError.self) { try JournalEntry.canonicalBytes(intakeRow: bad, sequence: 0, occurredAt: 0, sequencedAt: 0) }

        let short = try row { column, encoder in
            switch column {
            case .occurredAt: encoder.timestamp(microsecondsSinceUnixEpoch: 1_700_000_000_000_000)
            case .source: encoder.text("osmose-care")
            case .requestID: encoder.text("r")
            case .actorUserID: encoder.bytea([1, 2, 3])  // 3 bytes
            default: return false
            }
            return true
        }
        #expect(throws: EntryFormatError.self) { try JournalEntry.canonicalBytes(intakeRow: short, sequence: 0, occurredAt: 0, sequencedAt: 0) }
    }
}
