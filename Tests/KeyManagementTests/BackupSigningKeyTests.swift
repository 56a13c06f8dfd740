import Foundation
import Journal
import KeyManagement
import Keyring
import Store
import Testing
import TestSupport

@Suite("Backup-signing keys in the keyring", .serialized)
struct BackupSigningKeyTests {
    /// Records a backup signed by `keys` in the catalogue (what osmose-backupd does after each backup).
    func recordBackup(_ id: String, signedBy keys: [NoteSignerKey], on connection: Connection) async throws {
        try await connection.query(
            """
            INSERT INTO ops.backups (id, kind, store, started_at, finished_at, wal_start, wal_end, manifest_sha256, recipients, bytes, signed_by)
            VALUES ($1, 'full', '/srv/backups', now(), now(), '000000010000000000000002', '000000010000000000000003', $2, ARRAY['0123456789abcdef'], 1000,
                string_to_array($3, ','))
            """, [id, String(repeating: "ab", count: 32), keys.map { String(format: "%08x", $0.verifierKey.keyID) }.joined(separator: ",")])
    }

    @Test("The first key is primary, the next pending; osmose-keyd promotes it once the newest backup carries its signature, retires the old one after the overlap once the new one signs, and says when; each step journaled")
    func lifecycle() async throws {
        try await KeyFixture.with("backupsigning", patients: 0) { fixture, _ in
            let admin = fixture.admin
            let sysadmin = SystemActor.operator("tests", role: .sysadmin)
            let first = try NoteSignerKey.generate(name: "journal.test.example/backup")
            let second = try NoteSignerKey.generate(name: "journal.test.example/backup")
            let dry = try await admin.transaction { try BackupSigningKeys.start(signer: first, reason: "install", dryRun: true, actor: sysadmin, on: $0) }
            let none = try await admin.perform { try BackupSigningKeys.all(on: $0) }
            #expect(dry.state == .primary && none.isEmpty, "a dry run records nothing")
            let one = try await admin.transaction { try BackupSigningKeys.start(signer: first, reason: "install", dryRun: false, actor: sysadmin, on: $0) }
            #expect(one.state == .primary)
            await #expect(throws: KeyringError.self, "the same key twice") {
                try await admin.transaction { try BackupSigningKeys.start(signer: first, reason: "again", dryRun: false, actor: sysadmin, on: $0) }
            }
            let two = try await admin.transaction { try BackupSigningKeys.start(signer: second, reason: "yearly rollover", dryRun: false, actor: sysadmin, on: $0) }
            #expect(two.state == .pending)
            await #expect(throws: KeyringError.self, "one rollover at a time") {
                try await admin.transaction {
                    try BackupSigningKeys.start(signer: try NoteSignerKey.generate(name: "journal.test.example/backup"), reason: "third", dryRun: false, actor: sysadmin, on: $0)
                }
            }
            // osmose-backupd was given only the first key: warned that the pending one does not sign.
            let warnings = try await admin.perform { try BackupSigningKeys.warnings(loaded: [first.verifierKey], on: $0) }
            #expect(warnings.count == 1 && warnings[0].contains("pending") && warnings[0].contains(String(format: "%08x", second.verifierKey.keyID)), "\(warnings)")

            let keyd = SystemActor.daemon(.keyd)
            try await recordBackup("20261201T010000.000Z", signedBy: [first], on: admin)
            #expect(try await admin.transaction { try BackupSigningKeys.advance(overlapHours: 0, actor: keyd, on: $0) }.isEmpty, "not promoted before a backup carries it")
            try await recordBackup("20261202T010000.000Z", signedBy: [first, second], on: admin)
            let promoted = try await admin.transaction { try BackupSigningKeys.advance(overlapHours: 0, actor: keyd, on: $0) }
            #expect(promoted.count == 2 && promoted[0].contains("promoted") && promoted[1].contains("retired at"), "\(promoted)")
            let records = try await admin.perform { try BackupSigningKeys.all(on: $0) }
            #expect(records.map(\.state) == [.retired, .primary], "\(records)")
            let retiredAt = try #require(records[0].retiredAt)
            #expect(retiredAt.range(of: "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$", options: .regularExpression) != nil, "\(retiredAt)")
            #expect(promoted[1].contains("retired: \(retiredAt)"), "the line to add to backup.retired_verifier_keys")
            // Given the retired key still, osmose-backupd is told to remove its credential.
            let stale = try await admin.perform { try BackupSigningKeys.warnings(loaded: [first.verifierKey, second.verifierKey], on: $0) }
            #expect(stale.count == 1 && stale[0].contains("retired"), "\(stale)")
            let events = try await admin.query(
                "SELECT reason FROM journal.intake WHERE object_type = 'backup-signing-key' ORDER BY id").rows.map { try $0.string("reason") }
            #expect(events.count == 5 && events.last?.contains("retired at \(retiredAt)") == true, "\(events)")

            // Retired: its private half's destruction is recorded; the verifier key stays known.
            let destroyed = try await admin.transaction {
                try KeyInventory.destroyPublicKey(keyID: one.id, reason: "offline copy shredded", force: false, dryRun: false, actor: sysadmin, on: $0)
            }
            #expect(destroyed.destroyed && destroyed.purpose == "backup-signing")
            #expect(try await admin.perform { try BackupSigningKeys.all(on: $0) }.first?.retiredAt == retiredAt, "the retirement time stays")
        }
    }

    @Test("With an overlap, the old key keeps co-signing until it has passed")
    func overlap() async throws {
        try await KeyFixture.with("backupoverlap", patients: 0) { fixture, _ in
            let admin = fixture.admin
            let sysadmin = SystemActor.operator("tests", role: .sysadmin)
            let first = try NoteSignerKey.generate(name: "journal.test.example/backup")
            let second = try NoteSignerKey.generate(name: "journal.test.example/backup")
            _ = try await admin.transaction { try BackupSigningKeys.start(signer: first, reason: "install", dryRun: false, actor: sysadmin, on: $0) }
            _ = try await admin.transaction { try BackupSigningKeys.start(signer: second, reason: "rollover", dryRun: false, actor: sysadmin, on: $0) }
            try await recordBackup("20261202T010000.000Z", signedBy: [first, second], on: admin)
            let changes = try await admin.transaction { try BackupSigningKeys.advance(overlapHours: 168, actor: .daemon(.keyd), on: $0) }
            #expect(changes.count == 1 && changes[0].contains("promoted"), "\(changes)")
            #expect(try await admin.perform { try BackupSigningKeys.all(on: $0) }.map(\.state) == [.coSigning, .primary])
        }
    }
}
