import Age
import Foundation
import Journal
import KeyManagement
import Keyring
import Store
import Testing
import TestSupport

@Suite("Backup recipients in the keyring", .serialized)
struct RecipientTests {
    @Test("Recipients are added, listed for new backups, taken out of use (never the last), journaled; duplicates, dry runs and destruction behave")
    func lifecycle() async throws {
        try await KeyFixture.with("recipients", patients: 0) { fixture, _ in
            let admin = fixture.admin
            await #expect(throws: KeyringError.self, "no recipient yet") { try await admin.perform { try BackupRecipients.current(on: $0) } }
            let first = try AgeIdentity.generate().recipient
            let second = try AgeIdentity.generate().recipient
            let dry = try await admin.transaction { try BackupRecipients.add(first, label: "key safe A", reason: "install", dryRun: true, actor: .operator("tests", role: .sysadmin), on: $0) }
            #expect(try await admin.perform { try BackupRecipients.all(on: $0) }.isEmpty, "a dry run records nothing")
            let firstID = try await admin.transaction { try BackupRecipients.add(first, label: "key safe A", reason: "install", dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0) }
            #expect(firstID == dry)
            await #expect(throws: KeyringError.self, "the same recipient twice") {
                try await admin.transaction { try BackupRecipients.add(first, label: "again", reason: "install", dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0) }
            }
            await #expect(throws: KeyringError.self, "the last primary recipient") {
                try await admin.transaction { try BackupRecipients.retire(id: firstID, reason: "replace", dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0) }
            }
            let secondID = try await admin.transaction { try BackupRecipients.add(second, label: "escrow", reason: "second copy", dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0) }
            #expect(Set(try await admin.perform { try BackupRecipients.current(on: $0) }.map(\.encoded)) == [first.encoded, second.encoded])

            let retired = try await admin.transaction { try BackupRecipients.retire(id: firstID, reason: "replaced", dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0) }
            #expect(retired.state == "decrypt-only")
            #expect(try await admin.perform { try BackupRecipients.current(on: $0) }.map(\.encoded) == [second.encoded])
            await #expect(throws: KeyringError.self, "not primary any more") {
                try await admin.transaction { try BackupRecipients.retire(id: firstID, reason: "twice", dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0) }
            }
            // A retained backup encrypted to the first recipient keeps its identity needed.
            try await admin.query(
                """
                INSERT INTO ops.backups (id, kind, store, started_at, finished_at, wal_start, wal_end, manifest_sha256, recipients, bytes)
                VALUES ('20261122T010000Z', 'full', '/srv/backups', now(), now(), '000000010000000000000002', '000000010000000000000003', $1, ARRAY[$2], 1000)
                """, [String(repeating: "ab", count: 32), first.fingerprint])
            do {
                _ = try await admin.transaction {
                    try KeyInventory.destroyPublicKey(keyID: firstID, reason: "gone", force: false, dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0)
                }
                Issue.record("destroying a needed backup recipient was accepted")
            } catch let error as KeyringError {
                #expect(error.message.contains("20261122T010000Z"), "\(error)")
            }
            // Every data key that existed when the backup started is held by it (in the keyring it copied).
            let dataKeys = try await admin.transaction { try KeyInventory.status(policy: .defaults, on: $0) }
            #expect(!dataKeys.isEmpty && dataKeys.allSatisfy { $0.backups == ["20261122T010000Z"] }, "\(dataKeys.map(\.backups))")
            let forced = try await admin.transaction {
                try KeyInventory.destroyPublicKey(keyID: firstID, reason: "gone", force: true, dryRun: true, actor: .operator("tests", role: .sysadmin), on: $0)
            }
            #expect(forced.unrestorableBackups == ["20261122T010000Z"] && !forced.destroyed)
            #expect(try await admin.transaction { try BackupRecipients.retireUnneeded(actor: .daemon(.keyd), on: $0) }.isEmpty, "still needed")
            let listed = try await admin.transaction { try KeyInventory.publicKeys(policy: .defaults, on: $0) }
            #expect(listed.first { $0.id == firstID }?.backups == ["20261122T010000Z"])
            try await admin.query("UPDATE ops.backups SET state = 'pruned', pruned_at = now()")
            #expect(try await admin.transaction { try BackupRecipients.retireUnneeded(actor: .daemon(.keyd), on: $0) }.count == 1)
            #expect(try await admin.perform { try BackupRecipients.all(on: $0) }.first { $0.id == firstID }?.state == "retired")
            let events = try await admin.query(
                "SELECT object_id, reason FROM journal.intake WHERE object_type = 'backup-recipient' ORDER BY id").rows.map { (try $0.string("object_id"), try $0.string("reason")) }
            #expect(events.map(\.0) == [first.fingerprint, second.fingerprint, first.fingerprint, first.fingerprint])
            #expect(events[2].1.hasPrefix("no new backup"))
            #expect(secondID == firstID + 1)
            // The database refuses a second row for the same key and any deletion.
            await #expect(throws: StoreError.self) { try await admin.query("DELETE FROM keys.public_keys WHERE id = \(firstID)") }
        }
    }

    @Test("Switching to a hybrid post-quantum recipient: refused beside a classic primary unless replacing, which takes the classics out of use in the same transaction, journaled")
    func postQuantumSwitch() async throws {
        try await KeyFixture.with("pqrecipients", patients: 0) { fixture, _ in
            let admin = fixture.admin
            let classic = try AgeIdentity.generate().recipient
            let hybrid = try AgeHybridIdentity.generate().recipient
            _ = try await admin.transaction { try BackupRecipients.add(classic, label: "key safe A", reason: "install", dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0) }
            do {
                _ = try await admin.transaction { try BackupRecipients.add(hybrid, label: "key safe B", reason: "pq", dryRun: false, actor: .operator("tests", role: .sysadmin), on: $0) }
                Issue.record("a post-quantum recipient was added beside a classic primary")
            } catch let error as KeyringError {
                #expect(error.message.contains("--replace"), "\(error)")
            }
            let id = try await admin.transaction {
                try BackupRecipients.add(hybrid, label: "key safe B", reason: "pq", dryRun: false, replacingOtherKind: true, actor: .operator("tests", role: .sysadmin), on: $0)
            }
            let current = try await admin.perform { try BackupRecipients.current(on: $0) }
            #expect(current.map(\.encoded) == [hybrid.encoded] && current.allSatisfy(\.isPostQuantum))
            let all = try await admin.perform { try BackupRecipients.all(on: $0) }
            #expect(all.map(\.state) == ["decrypt-only", "primary"] && all.last?.id == id && all.last?.recipient.count == 1959)
            let reasons = try await admin.query("SELECT reason FROM journal.intake WHERE object_type = 'backup-recipient' ORDER BY id").rows.map { try $0.string("reason") }
            #expect(reasons.count == 3 && reasons[2].hasPrefix("replaced by \(hybrid.fingerprint)"), "\(reasons)")
        }
    }
}
