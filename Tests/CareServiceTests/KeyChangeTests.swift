import CareRecords
import Foundation
import Keyring
import Store
import Testing
import TestSupport

@Suite("Keys changed under the running care service")
struct KeyChangeTests {
    @Test("After a rotation the service's stale keyring is refused, reloaded, and every write, read and search still succeeds")
    func rotationUnderService() async throws {
        try await CareHarness.with("keychange") { harness in
            let token = try await harness.login("agent.sau")
            let before = try await harness.createPatient(token, lastName: "Dubois", firstName: "Anne", birthDate: "1970-02-03")
            // A rotation as osmose-keyd starts it: new primaries, the service not told.
            try await harness.admin.transaction { [master = harness.master] connection in
                for purpose in [DataKeyPurpose.column, .blindIndex] {
                    _ = try KeyLifecycle.promoteNewKey(purpose: purpose, master: master, rotateAfter: Date(), createdBy: "tests", on: connection)
                }
            }
            // The write under the demoted key is refused by the database, retried after reloading: it succeeds.
            let after = try await harness.createPatient(token, lastName: "Durand", firstName: "Paul", birthDate: "1981-11-12")
            let keys = try await harness.admin.query("SELECT blind_key_id, keys.ciphertext_key(last_name) AS column_key FROM care.patients WHERE id = $1::uuid", [after]).rows[0]
            let primaries = try await harness.admin.query("SELECT purpose, id FROM keys.data_keys WHERE state = 'primary'").rows
            let primary = Dictionary(uniqueKeysWithValues: try primaries.map { (try $0.string("purpose"), try $0.int("id")) })
            #expect(try keys.int("blind_key_id") == primary["blind-index"] && keys.int("column_key") == primary["column"])
            // Searches find the record under the old token and the one under the new.
            for (id, last, first, birth) in [(before, "Dubois", "Anne", "1970-02-03"), (after, "Durand", "Paul", "1981-11-12")] {
                let found = try await harness.request("GET", "/v1/patients?last_name=\(last)&first_name=\(first)&birth_date=\(birth)", token: token)
                #expect(found.status == 200 && (found.array.first?["id"] as? String) == id, "\(found.text)")
            }
            // A value re-encrypted under a key the service has never loaded is read after a reload.
            try await harness.admin.transaction { [master = harness.master] connection in
                _ = try KeyLifecycle.promoteNewKey(purpose: .column, master: master, rotateAfter: Date(), createdBy: "tests", on: connection)
            }
            let ring = try await DataKeyRing.load(on: harness.admin, master: harness.master)
            let cipher = ColumnCipher(ring: ring)
            let location = EncryptedColumn.patientLastName.location(rowID: before)
            let stored = try await harness.admin.query("SELECT last_name FROM care.patients WHERE id = $1::uuid", [before]).rows[0].bytes("last_name")
            let moved = try cipher.encrypt(try cipher.decrypt(stored, at: location), for: location)
            try await harness.admin.query("UPDATE care.patients SET last_name = $2 WHERE id = $1::uuid", [before, moved])
            let read = try await harness.request("GET", "/v1/patients/\(before)", token: token)
            #expect(read.status == 200 && read.object["last_name"] as? String == "Dubois", "\(read.text)")
        }
    }
}
