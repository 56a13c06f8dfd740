import Foundation
import Journal
import Store
import Testing
import TestSupport

/// The intake columns are declared once (``IntakeColumn``); these tests hold the
/// declaration equal to the table the migrations build, so a migration that adds,
/// drops, retypes or rebounds a column fails here until the declaration follows.
@Suite("Intake column declaration")
struct IntakeColumnTests {
    /// The PostgreSQL type name information_schema gives for each kind.
    static func typeName(_ kind: IntakeColumn.Kind) -> String {
        switch kind {
        case .timestamp: "timestamp with time zone"
        case .text: "text"
        case .uuid: "uuid"
        case .inet: "inet"
        }
    }

    @Test("The declaration is the live journal.intake: names in order, types, NOT NULL, and the CHECK bounds on lengths")
    func declarationIsTheTable() async throws {
        try await TestDatabase.with("intakecolumns") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await migrate(connection)
            let live = try await connection.query(
                """
                SELECT column_name, data_type, is_nullable FROM information_schema.columns
                WHERE table_schema = 'journal' AND table_name = 'intake' ORDER BY ordinal_position
                """
            ).rows.map { (name: try $0.string("column_name"), type: try $0.string("data_type"), nullable: try $0.string("is_nullable") == "YES") }
            #expect(live.map(\.name) == IntakeColumn.databaseFilled + IntakeColumn.allCases.map(\.name))
            let declared = Dictionary(uniqueKeysWithValues: IntakeColumn.allCases.map { ($0.name, $0) })
            for column in live {
                guard let declaration = declared[column.name] else { continue }
                #expect(column.type == Self.typeName(declaration.kind), "\(column.name)")
                #expect(column.nullable == !declaration.isRequired, "\(column.name)")
            }

            // Every bound on length() in the table's CHECK constraints, as PostgreSQL prints them
            // (`length(request_id) >= 1`, `length(actor_username) <= 128`).
            let checks = try await connection.query(
                "SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE conrelid = 'journal.intake'::regclass AND contype = 'c'"
            ).rows.map { try $0.string("definition") }
            var lowest: [String: Int] = [:]
            var highest: [String: Int] = [:]
            let bound = /length\((\w+)\) (<=|>=) (\d+)/
            for definition in checks {
                for match in definition.matches(of: bound) {
                    let (name, limit) = (String(match.output.1), Int(match.output.3)!)
                    if match.output.2 == "<=" { highest[name] = limit } else { lowest[name] = limit }
                }
            }
            #expect(Set(highest.keys).isSuperset(of: lowest.keys), "a length with a lower bound only: \(lowest)")
            for column in IntakeColumn.allCases {
                let checked = highest[column.name].map { (lowest[column.name] ?? 0)...$0 }
                #expect(column.lengthBound == checked, "\(column.name): declared \(String(describing: column.lengthBound)), CHECK \(String(describing: checked))")
            }
            await connection.close()
        }
    }

    @Test("Every canonical field has exactly one intake column; occurred_at alone is in the fixed header")
    func canonicalFields() {
        let mapped = IntakeColumn.allCases.compactMap(\.canonicalField)
        #expect(mapped.sorted { $0.rawValue < $1.rawValue } == CanonicalScan.Field.allCases)
        #expect(IntakeColumn.allCases.filter { $0.canonicalField == nil } == [.occurredAt])
    }

    @Test("A user agent is cut to 512 code points, not 512 characters: one letter with 600 combining marks is recorded, its last code point the cut marker")
    func userAgentInCodePoints() async throws {
        try await TestDatabase.with("intakeuseragent") { database in
            let connection = try await Connection.connect(database.connectionString, logger: testLogger)
            try await migrate(connection)
            var event = AccessEvent(source: "osmose-care", requestID: "agent-1", action: .read, objectType: "patient", result: .success)
            // One grapheme cluster of 601 code points: String.prefix(512) keeps all of it.
            event.userAgent = "e" + String(repeating: "\u{301}", count: 600)
            let recorded = event
            try await connection.transaction { connection in try connection.record(recorded) }
            let stored = try await connection.query("SELECT user_agent FROM journal.intake").rows[0].string("user_agent")
            #expect(stored.unicodeScalars.count == JournalText.userAgentLimit)
            #expect(stored.unicodeScalars.dropLast().elementsEqual(event.userAgent!.unicodeScalars.prefix(JournalText.userAgentLimit - 1)))
            #expect(stored.unicodeScalars.last == JournalText.cutMarker)
            await connection.close()
        }
    }
}
