import CareRecords
import Foundation
import Journal
import KeyManagement
import Keyring
import Store
import Testing
import TestSupport

@Suite("keys rotate --dry-run: checked as the real run, nothing changed")
struct RotationRehearsalTests {
    @Test("The rehearsal counts what would move, refuses another master key and a running rotation as the real run does, and changes and journals nothing")
    func rehearsal() async throws {
        try await KeyFixture.with("keyrehearsal", patients: 10) { fixture, _ in
            let admin = fixture.admin
            let actor = SystemActor.operator("tests", role: .sysadmin)
            func state() async throws -> String {
                try await admin.query(
                    """
                    SELECT (SELECT string_agg(id || ':' || state, ',' ORDER BY id) FROM keys.data_keys) || '/' ||
                           (SELECT count(*) FROM keys.rotations) || '/' || (SELECT count(*) FROM journal.intake) AS s
                    """
                ).rows[0].string("s")
            }
            let before = try await state()
            let queued = try await KeyRotation.rehearse(purpose: .column, reason: "yearly", master: fixture.master, cryptoperiodDays: 365, actor: actor, on: admin)
            #expect(queued == 10 * 4 + 4 + 10, "four identity columns, 4 INS, 10 version snapshots")
            #expect(try await state() == before, "nothing changed, nothing journaled")

            let other = try MasterKey.generate()
            let wrong = await #expect(throws: KeyringError.self) {
                try await KeyRotation.rehearse(purpose: .column, reason: "yearly", master: other, cryptoperiodDays: 365, actor: actor, on: admin)
            }
            #expect(wrong?.code == .wrongMasterKey, "the dry run checks the master key like the real run")
            await #expect(throws: KeyringError.self, "a bad reason") {
                try await KeyRotation.rehearse(purpose: .column, reason: "", master: fixture.master, cryptoperiodDays: 365, actor: actor, on: admin)
            }

            _ = try await admin.transaction { [master = fixture.master] connection in
                try KeyRotation.start(purpose: .column, reason: "real", master: master, cryptoperiodDays: 365, actor: actor, on: connection)
            }
            let running = await #expect(throws: KeyringError.self) {
                try await KeyRotation.rehearse(purpose: .column, reason: "again", master: fixture.master, cryptoperiodDays: 365, actor: actor, on: admin)
            }
            #expect(running?.code == .refused, "a rotation already running is refused by the dry run too")
            #expect(try await state() != before)
        }
    }
}
