import Foundation
import Journal
import Store
import Testing
import TestSupport

@Suite("Intake texts: bounded in code points, cleaned, replaced with a marker, never dropped")
struct IntakeTextTests {
    @Test("A recordable text comes back unchanged, ASCII or not")
    func unchanged() {
        for text in ["curl/8.5", "Mozilla/5.0 (X11; Linux x86_64)", "Zoë Müller-Lüdenscheidt", "李小龍", "👩🏽‍⚕️ infirmière", ""] {
            #expect(JournalText.bounded(text, to: 512) == text)
            #expect(JournalText.problem(in: text, limit: 512) == nil)
        }
    }

    @Test("NUL, control characters, separators and bidirectional controls are replaced one for one with U+FFFD")
    func replaced() {
        let text = "a\u{0}b\tc\nd\u{1B}[31me\u{7F}f\u{85}g\u{2028}h\u{202E}i\u{2066}j"
        let recorded = JournalText.bounded(text, to: 512)
        #expect(recorded == "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}[31me\u{FFFD}f\u{FFFD}g\u{FFFD}h\u{FFFD}i\u{FFFD}j")
        #expect(recorded.unicodeScalars.count == text.unicodeScalars.count)
        #expect(JournalText.problem(in: "x\u{0}y") == .nul)
        #expect(JournalText.problem(in: "x\u{1B}y") == .unrecordableCharacter(0x1B))
        #expect(JournalText.problem(in: "x\u{202E}y") == .unrecordableCharacter(0x202E))
        #expect("\(JournalText.Problem.unrecordableCharacter(0x1B))" == "contains a control character (U+001B)")
    }

    @Test("An over-long text is cut to its bound in code points, the last one the cut marker; one grapheme of 700 code points too")
    func cut() {
        let combining = "e" + String(repeating: "\u{301}", count: 700)
        #expect(combining.count == 1)
        let recorded = JournalText.bounded(combining, to: 128)
        #expect(recorded.unicodeScalars.count == 128)
        #expect(recorded.unicodeScalars.last == JournalText.cutMarker)
        #expect(recorded.unicodeScalars.first == "e")
        #expect(JournalText.problem(in: combining, limit: 128) == .tooLong(codePoints: 701, limit: 128))
        let ascii = String(repeating: "x", count: 600)
        #expect(JournalText.bounded(ascii, to: 512) == String(repeating: "x", count: 511) + "\u{2026}")
        #expect(JournalText.bounded(String(repeating: "x", count: 512), to: 512).count == 512, "exactly at the bound: kept")
    }

    @Test("Random texts always come back recordable: within the bound, no unrecordable code point, unchanged when already recordable")
    func randomTexts() {
        var generator = TestSeed.generator(test: "IntakeTextTests.randomTexts")
        for _ in 0..<2_000 {
            let text = RandomText.make(using: &generator)
            let limit = [1, 2, 64, 128, 512].randomElement(using: &generator)!
            let recorded = JournalText.bounded(text, to: limit)
            #expect(recorded.unicodeScalars.count <= limit)
            #expect(recorded.unicodeScalars.allSatisfy(JournalText.isRecordable))
            if JournalText.problem(in: text, limit: limit) == nil { #expect(recorded == text) }
        }
    }

    @Test("Addresses take the form PostgreSQL prints back; anything else is not an address")
    func addresses() {
        #expect(JournalText.canonicalAddress("192.0.2.7") == "192.0.2.7")
        #expect(JournalText.canonicalAddress("2001:DB8:0:0:0:0:0:1") == "2001:db8::1")
        #expect(JournalText.canonicalAddress("::ffff:10.0.0.1") == "::ffff:10.0.0.1")
        for invalid in ["", "999.1.1.1", "10.0.0.1:8080", "[::1]", "10.0.0.0/8", "localhost", " 10.0.0.1", "10.0.0.1\u{0}"] {
            #expect(JournalText.canonicalAddress(invalid) == nil, "\(invalid)")
        }
    }
}

@Suite("Strict JSON: a key given twice, a byte-order mark, a NUL, an unpaired surrogate are refused")
struct StrictJSONTests {
    func problem(_ text: String) -> StrictJSON.Problem? {
        problem(Array(text.utf8))
    }

    func problem(_ bytes: [UInt8]) -> StrictJSON.Problem? {
        do {
            try StrictJSON.check(bytes)
            return nil
        } catch {
            return error
        }
    }

    @Test("Valid documents pass")
    func valid() {
        for text in [
            #"{}"#, #"[]"#, #"{"a":1,"b":[true,false,null],"c":{"d":"é\n\u00e9\ud83d\ude00"}}"#, #" {"x" : -0.5e+3 } "#, #""text""#, "42",
            #"{"a":{"k":1},"b":{"k":2}}"#,
        ] {
            #expect(problem(text) == nil, "\(text)")
        }
    }

    @Test("A field given twice is refused, escapes resolved and nested fields named by path")
    func duplicates() {
        #expect(problem(#"{"a":1,"a":2}"#) == .duplicateField("a"))
        #expect(problem(#"{"a":1,"\u0061":2}"#) == .duplicateField("a"))
        #expect(problem(#"{"items":[{"label":"x","label":"y"}]}"#) == .duplicateField("items.0.label"))
        #expect(problem(#"{"o":{"p":{"q":1,"q":1}}}"#) == .duplicateField("o.p.q"))
    }

    @Test("A NUL in a value or a key, a byte-order mark, invalid UTF-8 and unpaired surrogates are refused")
    func refused() {
        #expect(problem(#"{"name":"a\u0000b"}"#) == .nul("name"))
        #expect(problem(#"{"a\u0000":1}"#) == .nul("a\u{0}".replacingOccurrences(of: "\u{0}", with: "\u{FFFD}")))
        #expect(problem([0xEF, 0xBB, 0xBF] + Array(#"{}"#.utf8)) == .byteOrderMark)
        #expect(problem([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]) == .notUTF8)
        for text in [#"{"a":"\ud800"}"#, #"{"a":"\udc00"}"#, #"{"a":"\ud800\u0041"}"#] {
            guard case .malformed = problem(text) else {
                Issue.record("\(text) was not refused as malformed")
                continue
            }
        }
    }

    @Test("What is not JSON is refused, never crashes; nesting is bounded")
    func malformed() {
        for text in ["", "{", "}", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, "[1,]", "01", "1.", "-", "tru", #"{"a":"x"#, "{\"a\":\"\u{1}\"}", "[] []", "\u{0}"] {
            guard case .malformed = problem(text) else {
                Issue.record("\(text.debugDescription) was not refused as malformed")
                continue
            }
        }
        #expect(problem(String(repeating: "[", count: 65) + String(repeating: "]", count: 65)) == .tooDeep)
        #expect(problem(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)) == nil)
        var generator = TestSeed.generator(test: "StrictJSONTests.malformed")
        for _ in 0..<2_000 {
            let bytes = (0..<Int.random(in: 0...40, using: &generator)).map { _ in Array(#"{}[]",:\u0aeE+-.9tfn "#.utf8).randomElement(using: &generator)! }
            _ = problem(bytes)
        }
    }
}

@Suite("The intake binds a row to the role that inserts it")
struct IntakeBindingTests {
    func event(source: String, role: String?, occurredAt: Date = Date()) -> AccessEvent {
        var event = AccessEvent(occurredAt: occurredAt, source: source, requestID: "bound-\(UUID().uuidString.prefix(8))", action: .read, objectType: "patient", result: .success)
        event.actorRole = role
        return event
    }

    @Test("As osmose_care: another source, a system or operator role, or a time far from now is refused; its own events pass")
    func care() async throws {
        try await TestDatabase.with("intakebinding") { database in
            let admin = try await Connection.connect(database.connectionString, logger: testLogger)
            try await migrate(admin)
            let care = try await Connection.connect("\(database.connectionString) user=osmose_care", logger: testLogger)
            let accepted = [event(source: "osmose-care", role: "agent"), event(source: "osmose-care", role: nil), event(source: "osmose-care", role: "admin")]
            for event in accepted { try await care.perform { try $0.record(event) } }
            let refused: [(String, AccessEvent)] = [
                ("another program", event(source: "osmose-keyd", role: "system")),
                ("an external source", event(source: "osmose-dev", role: nil)),
                ("osmosectl", event(source: "osmosectl", role: "sysadmin")),
                ("the system role", event(source: "osmose-care", role: "system")),
                ("an operator role", event(source: "osmose-care", role: "security-officer")),
                ("an hour ago", event(source: "osmose-care", role: "agent", occurredAt: Date().addingTimeInterval(-3600))),
                ("a year ago", event(source: "osmose-care", role: "agent", occurredAt: Date().addingTimeInterval(-365 * 86400))),
                ("ten minutes ahead", event(source: "osmose-care", role: "agent", occurredAt: Date().addingTimeInterval(600))),
            ]
            for (label, forged) in refused {
                let error = await #expect(throws: StoreError.self, "\(label)") { try await care.perform { try $0.record(forged) } }
                #expect(error?.sqlState == "42501", "\(label)")
                let group = [accepted[0], forged]
                await #expect(throws: StoreError.self, "\(label), in a COPY") { try await care.perform { try $0.record(group) } }
            }
            #expect(try await admin.query("SELECT count(*) AS n FROM journal.intake").rows[0].int("n") == accepted.count)
            await care.close()
            await admin.close()
        }
    }

    @Test("As a daemon's role: its own program as the system actor, or osmosectl as an operator; nothing else")
    func daemons() async throws {
        try await TestDatabase.with("intakebindingd") { database in
            let admin = try await Connection.connect(database.connectionString, logger: testLogger)
            try await migrate(admin)
            let keyd = try await Connection.connect("\(database.connectionString) user=osmose_keyd", logger: testLogger)
            for good in [event(source: "osmose-keyd", role: "system"), event(source: "osmosectl", role: "sysadmin"), event(source: "osmosectl", role: "security-officer")] {
                try await keyd.perform { try $0.record(good) }
            }
            for bad in [
                event(source: "osmose-care", role: "agent"), event(source: "osmose-keyd", role: "sysadmin"), event(source: "osmosectl", role: "system"),
                event(source: "osmosectl", role: nil), event(source: "osmose-keyd", role: "system", occurredAt: Date().addingTimeInterval(-3600)),
            ] {
                await #expect(throws: StoreError.self, "\(bad.source) \(bad.actorRole ?? "none")") { try await keyd.perform { try $0.record(bad) } }
            }
            // Administrators and osmose-journald (whose socket binds the source to its peer) are not bound.
            try await admin.perform { try $0.record(self.event(source: "osmose-dev", role: nil, occurredAt: Date(timeIntervalSince1970: 1_700_000_000))) }
            await keyd.close()
            await admin.close()
        }
    }
}
