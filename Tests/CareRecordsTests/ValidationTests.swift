import CareRecords
import Foundation
import Testing

/// A request body with one timestamp field.
struct TimestampHolder: StrictInput {
    static let fields: Set<String> = ["at"]
    let at: Date
}

@Suite("Field rules and JSON timestamps")
struct ValidationTests {
    @Test("Timestamps format as ISO 8601 UTC with milliseconds and parse back, offsets included")
    func timestamps() throws {
        let date = Date(timeIntervalSince1970: 1_795_000_000.25)
        #expect(CareJSON.timestamp(date) == "2026-11-18T11:06:40.250Z")
        #expect(CareJSON.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        func parse(_ text: String) throws -> Date {
            let body = Array("{\"at\":\"\(text)\"}".utf8)
            return try CareJSON.decode(TimestampHolder.self, from: body).at
        }
        #expect(try parse("2026-11-18T11:06:40.250Z") == date)
        #expect(try parse("2026-11-18T12:06:40.25+01:00") == date)
        #expect(try parse("2026-11-18T11:06:40Z") == Date(timeIntervalSince1970: 1_795_000_000))
        for bad in ["2026-11-18", "2026-13-18T07:06:40Z", "2026-11-18T07:06:40", "2026-11-18T07:06:40.Z", "2026-11-18T07:06:40Zjunk", "yesterday"] {
            let error = #expect(throws: CareError.self, "\(bad)") { try parse(bad) }
            #expect(error?.code == .invalidField)
        }
    }

    @Test("INS: the key is checked, Corsican departments included")
    func ins() throws {
        #expect(try Validate.ins("2 96 04 75 123 456 50") == "296047512345650", "spaces are allowed")
        #expect(try Validate.ins("277072A12345619") == "277072A12345619")
        #expect(throws: CareError.self) { try Validate.ins("296047512345651") }
        #expect(throws: CareError.self) { try Validate.ins("29604751234565") }
    }

    @Test("Names accept every script, apostrophes and hyphens; refuse markup and control characters")
    func names() throws {
        for name in ["O'Brien", "N’Diaye", "Müller-Lüdenscheidt", "李", "Łukasiewicz", "Jean-Pierre Jr."] {
            #expect(try Validate.name(name, field: "last_name") == name)
        }
        for name in ["", "<b>", "a;b", "x\u{0}y", "tab\there", String(repeating: "a", count: 101)] {
            #expect(throws: CareError.self, "\(name)") { try Validate.name(name, field: "last_name") }
        }
    }

    @Test("Passwords hash in PHC form, verify in constant time, and a malformed hash never matches")
    func passwords() throws {
        let hasher = PasswordHasher(costExponent: 10)
        let hash = try hasher.hash("correct horse battery staple")
        #expect(hash.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        #expect(PasswordHasher.verify("correct horse battery staple", against: hash))
        #expect(!PasswordHasher.verify("correct horse battery stapler", against: hash))
        #expect(!PasswordHasher.verify("x", against: "$scrypt$ln=99,r=8,p=1$AAAA$AAAA"))
        #expect(!PasswordHasher.verify("x", against: "plain"))
        #expect(PasswordHasher.costExponent(of: hash) == 10)
        #expect(try hasher.hash("correct horse battery staple") != hash, "salted")
        #expect(throws: CareError.self) { try hasher.hash("short") }
    }
}
