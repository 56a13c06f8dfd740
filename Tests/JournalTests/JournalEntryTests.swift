import Foundation
import Journal
import Testing

@Suite("Canonical journal entries (format version 1)")
struct JournalEntryTests {
    static func sample(_ sequence: UInt64 = 42) -> JournalEntry {
        JournalEntry(
            sequence: sequence, occurredAt: 1_795_000_000_123_456, sequencedAt: 1_795_000_001_000_000, source: "osmose-care", requestID: "req-1",
            actorUserID: "0d9e6a4c-5b1e-4f55-9a0e-3c2f1d7b8a90", actorUsername: "agent.dupont", actorRole: "agent", actorTeam: "sau",
            action: "read", objectType: "patient", objectID: "p-1", patientID: "7f3c1e2a-9b8d-4c6e-a5f4-0123456789ab", purpose: "care",
            result: "success", reason: nil, clientIP: "2001:db8::1", userAgent: "Mozilla/5.0 — ünïcode\ttab")
    }

    @Test("Bytes decode back to the same entry, and the layout is the documented one")
    func roundTrip() throws {
        let entry = Self.sample()
        let bytes = entry.canonicalBytes
        #expect(try JournalEntry(canonical: bytes) == entry)
        #expect(bytes[0] == 1)
        #expect(Array(bytes[1..<9]) == [0, 0, 0, 0, 0, 0, 0, 42])
        #expect(Array(bytes[25..<27]) == [0, 11], "source is 11 bytes long")
        #expect(Array(bytes[27..<38]) == Array("osmose-care".utf8))
        var absent = entry
        absent.reason = nil
        absent.objectID = nil
        #expect(try JournalEntry(canonical: absent.canonicalBytes).objectID == nil)
        var empty = entry
        empty.objectID = ""
        #expect(try JournalEntry(canonical: empty.canonicalBytes).objectID == "", "an empty string is not an absent value")
    }

    @Test("Anything but the one encoding of valid values is refused, naming the field")
    func strictness() throws {
        let bytes = Self.sample().canonicalBytes
        func refused(_ mutated: [UInt8], _ fragment: String) {
            do {
                _ = try JournalEntry(canonical: mutated)
                Issue.record("accepted: \(fragment)")
            } catch let error as EntryFormatError {
                #expect(error.reason.contains(fragment), "\(error.reason)")
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        refused(bytes + [0], "after the last field")
        refused(Array(bytes.dropLast()), "user_agent")
        refused([2] + bytes.dropFirst(), "version")
        refused([], "truncated")
        var upper = Self.sample()
        upper.patientID = upper.patientID!.uppercased()
        refused(upper.canonicalBytes, "patient_id")
        var action = Self.sample()
        action.action = "peek"
        refused(action.canonicalBytes, "action")
        var role = Self.sample()
        role.actorRole = "root"
        refused(role.canonicalBytes, "actor_role")
        var invalidUTF8 = bytes
        invalidUTF8[27] = 0xFF
        refused(invalidUTF8, "source")
        var missing = Self.sample()
        missing.result = ""
        refused(missing.canonicalBytes, "result")
        var long = Self.sample()
        long.userAgent = String(repeating: "x", count: 513)
        refused(long.canonicalBytes, "user_agent")
    }

    @Test("Every action, purpose and result the intake accepts is accepted in canonical bytes, and nothing near them")
    func vocabularies() throws {
        for action in AccessAction.allCases {
            var entry = Self.sample()
            entry.action = action.rawValue
            #expect(try JournalEntry(canonical: entry.canonicalBytes).action == action.rawValue)
            entry.action = action.rawValue + "s"
            #expect(throws: EntryFormatError.self) { try JournalEntry(canonical: entry.canonicalBytes) }
        }
        for purpose in AccessPurpose.allCases {
            var entry = Self.sample()
            entry.purpose = purpose.rawValue
            #expect(try JournalEntry(canonical: entry.canonicalBytes).purpose == purpose.rawValue)
            entry.purpose = String(purpose.rawValue.dropLast())
            #expect(throws: EntryFormatError.self) { try JournalEntry(canonical: entry.canonicalBytes) }
        }
        for result in AccessResult.allCases {
            var entry = Self.sample()
            entry.result = result.rawValue
            #expect(try JournalEntry(canonical: entry.canonicalBytes).result == result.rawValue)
        }
    }

    @Test("Search columns are compared in place: a binary UUID against its canonical spelling")
    func uuidComparison() throws {
        let entry = Self.sample()
        let bytes = entry.canonicalBytes
        let scan = try CanonicalScan(bytes)
        let patient = UUID(uuidString: entry.patientID!)!
        let binary = withUnsafeBytes(of: patient.uuid) { Array($0) }
        let canonical = bytes[...]
        #expect(scan.field(.patientID, in: canonical, equalsUUID: binary[...]))
        var other = binary
        other[15] ^= 1
        #expect(!scan.field(.patientID, in: canonical, equalsUUID: other[...]))
        #expect(!scan.field(.patientID, in: canonical, equalsUUID: nil))
        #expect(!scan.field(.reason, in: canonical, equalsUUID: binary[...]))
        #expect(scan.field(.reason, in: canonical, equals: nil as String?))
        #expect(scan.field(.actorTeam, in: canonical, equals: "sau"))
        #expect(!scan.field(.actorTeam, in: canonical, equals: "sa"))
        #expect(scan.slice(.userAgent, in: canonical).map { String(decoding: $0, as: UTF8.self) } == entry.userAgent)
        // A slice that does not start at index 0, as rows of a COPY buffer do.
        let padded = [0, 0, 0] + bytes
        let shifted = try CanonicalScan(padded[3...])
        #expect(shifted.field(.actorTeam, in: padded[3...], equals: "sau") && shifted.sequence == entry.sequence)
    }

    @Test("The largest valid entry stays far below the 65,535-byte limit")
    func sizeBound() {
        var entry = Self.sample()
        entry.requestID = String(repeating: "r", count: 128)
        entry.actorUsername = String(repeating: "é", count: 128)
        entry.actorTeam = String(repeating: "é", count: 64)
        entry.objectID = String(repeating: "é", count: 128)
        entry.reason = String(repeating: "é", count: 200)
        entry.userAgent = String(repeating: "\u{10FFFF}", count: 512)
        #expect(entry.canonicalBytes.count < 4096)
        #expect((try? JournalEntry(canonical: entry.canonicalBytes)) == entry)
    }

    @Test("Timestamps print as RFC 3339 UTC with microseconds, also before 1970")
    func timestamps() {
        #expect(JournalEntry.rfc3339(microseconds: 1_795_000_000_123_456) == "2026-11-18T11:06:40.123456Z")
        #expect(JournalEntry.rfc3339(microseconds: -1) == "1969-12-31T23:59:59.999999Z")
    }
}
