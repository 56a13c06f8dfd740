import CareRecords
import Foundation
import Testing

@Suite("The registry of encrypted care columns and blind-index tokens")
struct EncryptedColumnsTests {
    let registry = EncryptedColumnRegistry.care

    @Test("Each column is declared once, with a role; every token reads encrypted columns of its own table, each once")
    func consistency() {
        #expect(Set(registry.columns.map(\.name)).count == registry.columns.count)
        #expect(
            registry.tables == [
                "care.patients", "care.episodes", "care.transmissions", "care.record_versions", "dsar.requests", "dsar.notes", "dsar.documents",
                "dsar.redactions", "dsar.packs",
            ])
        #expect(registry.columns.allSatisfy { !$0.holds.isEmpty && $0.rowIDColumn == "id" })
        for set in registry.searchTokens {
            #expect(Set(set.tokens.map(\.column)).count == set.tokens.count && Set(set.tokens.map(\.domain)).count == set.tokens.count)
            for token in set.tokens {
                #expect(token.sources.allSatisfy { registry.columns.contains($0) && $0.table == set.table }, "\(token.domain)")
            }
        }
        #expect(SearchTokenSet.patients.sources.map(\.column) == ["last_name", "first_name", "birth_date", "ins"])
    }

    @Test("The roles retention and subject-request exports will read: identity fields are direct identifiers, notes free text")
    func roles() {
        let byRole = Dictionary(grouping: registry.columns, by: \.role).mapValues { Set($0.map(\.name)) }
        #expect(
            byRole[.directIdentifier]
                == [
                    "care.patients.last_name", "care.patients.first_name", "care.patients.birth_date", "care.patients.ins",
                    "care.patients.date_of_death", "dsar.requests.requester_name", "dsar.requests.requester_contact",
                ])
        #expect(
            byRole[.freeText]
                == [
                    "care.episodes.reason", "care.episodes.imaging_note", "care.episodes.lab_note", "care.episodes.activity_status",
                    "care.transmissions.body", "dsar.requests.identity_check", "dsar.notes.body", "dsar.documents.file_name", "dsar.documents.content",
                    "dsar.redactions.removed_text",
                ])
        #expect(byRole[.structured] == ["care.patients.sex", "care.transmissions.checklist", "care.record_versions.snapshot", "dsar.packs.content"])
    }

    @Test("Pseudonymisation: identifiers give way to the pseudonym or their year, free text and anything that may hold it is destroyed; only the sex is kept")
    func pseudonymisationRules() {
        // The subject-request register (dsar.*) has its own term and is left by pseudonymisation.
        let care = registry.columns.filter { $0.table.hasPrefix("care.") }
        #expect(care.count < registry.columns.count)
        for column in care {
            switch column.role {
            case .freeText: #expect(column.atTerm == .destroy, "\(column.name)")
            case .directIdentifier: #expect(column.atTerm == .pseudonym || column.atTerm == .year(into: column.column == "birth_date" ? "birth_year" : "death_year"), "\(column.name)")
            case .structured: #expect(column.atTerm == (column.name == "care.patients.sex" ? .keep : .destroy), "\(column.name)")
            }
        }
        #expect(care.filter { $0.atTerm == .keep }.map(\.name) == ["care.patients.sex"])
    }

    @Test("A ciphertext is bound to the qualified table, the column and the row id as PostgreSQL prints it")
    func binding() throws {
        let id = try #require(UUID(uuidString: "0F8FAD5B-D9CB-469F-A165-70867728950E"))
        let location = EncryptedColumn.patientLastName.location(rowID: id)
        #expect(location.table == "care.patients" && location.column == "last_name" && location.rowID == "0f8fad5b-d9cb-469f-a165-70867728950e")
        #expect(EncryptedColumn.patientLastName.location(rowID: id.uuidString) == location)
        #expect(EncryptedColumn.recordVersionSnapshot.location(rowID: id).table == "care.record_versions")
    }

    @Test("Adding a column or a table's tokens gives a registry that lists them after the care records' own")
    func adding() {
        let note = EncryptedColumn(table: "scratch.notes", column: "note", role: .freeText, holds: "a note")
        let tokens = SearchTokenSet(
            table: "scratch.notes", keyIDColumn: "blind_key_id", tokens: [SearchToken(column: "search_note", domain: "scratch.note", sources: [note])])
        let extended = registry.adding(note).adding(tokens)
        #expect(extended.columns == registry.columns + [note])
        #expect(extended.tables.last == "scratch.notes" && extended.columns(of: "scratch.notes") == [note])
        #expect(extended.searchTokens.map(\.name) == ["care.patients.search_tokens", "scratch.notes.search_tokens"])
    }
}
