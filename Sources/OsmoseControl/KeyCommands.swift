import Age
import ArgumentParser
import Foundation
import Glibc
import Journal
import KeyManagement
import Keyring
import Settings
import Store

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "The keyring: master key and data keys.",
        subcommands: [GenerateMaster.self, Initialise.self, Status.self, Rotate.self, RotateMaster.self, AddRecipient.self, RetireRecipient.self, Destroy.self])

    struct GenerateMaster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "generate-master",
            abstract: "Write a new random 32-byte master key to a file (mode 0600); refuses to overwrite.",
            discussion: "Then protect it with systemd-creds encrypt and pass it as LoadCredentialEncrypted=master-key:….")
        @Option(help: "Where to write the key.") var out: String

        func run() async throws {
            try await reportingFailures {
                let key = try MasterKey.generate()
                var bytes = key.exposedBytes()
                defer { for index in bytes.indices { bytes[index] = 0 } }
                try writeSecretFile(out, bytes)
                print("master key written to \(out) (fingerprint \(key.fingerprint))")
            }
        }
    }

    struct Initialise: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create a primary data key for each purpose that has none, wrapped by the master key.",
            discussion: "Safe to run twice. Refuses if the keyring is wrapped by another master key.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The master key file.") var masterKey: String

        func run() async throws {
            try await reportingFailures {
                let master = try MasterKey.load(path: masterKey)
                let created = try await options.withConnection { connection in
                    try await KeyringSetup.initialise(master: master, actor: keyOperator, on: connection)
                }
                print(created.isEmpty ? "keyring already initialised (master key \(master.fingerprint))" : "created data keys \(created.map(String.init).joined(separator: ", ")) under master key \(master.fingerprint)")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every key version: state, dates, planned rotation, values under it per table and column, rotations.",
            discussion: "Counts come from a scan of every encrypted column (seconds for a million values). Needs no key material.")
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Print JSON.") var json = false

        struct Report: Encodable {
            let keys: [KeyStatus]
            let publicKeys: [PublicKeyStatus]
            let rotations: [RotationRecord]
            let backupCatalogue: String
        }

        func run() async throws {
            try await reportingFailures {
                let policy = try loadKeyPolicy(options)
                let overview = try await options.withConnection { try await KeyInventory.overview(policy: policy, on: $0) }
                let (keys, publicKeys, rotations) = (overview.keys, overview.publicKeys, overview.rotations)
                let catalogue = "\(overview.retainedBackups) retained backups in ops.backups (data keys are inside the backed-up database; each backup needs one identity of its recipients)"
                if json { return try printJSON(Report(keys: keys, publicKeys: publicKeys, rotations: rotations, backupCatalogue: catalogue)) }
                printTable(
                    ["KEY", "PURPOSE", "STATE", "CREATED", "SINCE", "ROTATES", "BACKUPS", "VALUES", "WHERE"],
                    keys.map { key in
                        [
                            "\(key.id)", key.purpose, key.state, Self.day(key.createdAt), Self.day(key.stateChangedAt), key.plannedRotation.map(Self.day) ?? "-",
                            "\(key.backups.count)", "\(key.totalValues)", key.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
                        ]
                    })
                if !publicKeys.isEmpty {
                    print("")
                    printTable(
                        ["KEY", "PURPOSE", "STATE", "CREATED", "SINCE", "ROTATES", "FINGERPRINT", "BACKUPS", "PUBLIC KEY"],
                        publicKeys.map { key in
                            [
                                "\(key.id)", key.purpose, key.purpose.hasSuffix("-signing") && key.state == "decrypt-only" ? "co-signing" : key.state,
                                Self.day(key.createdAt), Self.day(key.stateChangedAt), key.plannedRotation.map(Self.day) ?? "-", key.fingerprint,
                                key.purpose == "backup-recipient" ? "\(key.backups.count)" : "-", key.publicKey,
                            ]
                        })
                    if let due = publicKeys.first(where: { $0.purpose == "journal-signing" && $0.state == "primary" && ($0.plannedRotation ?? .distantFuture) <= Date() }) {
                        print("journal signing key \(due.id) has reached the end of its cryptoperiod: roll it over (osmosectl keys rotate --purpose journal-signing)")
                    }
                    if let due = publicKeys.first(where: { $0.purpose == "backup-signing" && $0.state == "primary" && ($0.plannedRotation ?? .distantFuture) <= Date() }) {
                        print("backup-signing key \(due.id) has reached the end of its cryptoperiod: roll it over (osmosectl keys rotate --purpose backup-signing)")
                    }
                }
                let backupSigning = try await options.withConnection { connection in
                    try await connection.perform { try BackupSigningKeys.all(on: $0) }
                }
                if !backupSigning.isEmpty {
                    print("")
                    print("backup-signing verifier keys, for backup.verifier_keys and backup.retired_verifier_keys wherever backups are verified or restored:")
                    for key in backupSigning {
                        if let retired = key.retiredAt {
                            print("  retired_verifier_keys: - {key: \"\(key.verifierKey.encoded)\", retired: \(retired)}")
                        } else if key.state.signs {
                            print("  verifier_keys:         - \"\(key.verifierKey.encoded)\"   (\(key.state.displayName))")
                        }
                    }
                }
                for rotation in rotations.prefix(5) {
                    print("rotation \(rotation.id): \(rotation.purpose.rawValue) keys \(rotation.fromKeys) → \(rotation.toKey), \(rotation.state), \(rotation.rewritten) values rewritten")
                }
                print("backups: \(catalogue)")
            }
        }

        static func day(_ date: Date) -> String { String(ISO8601DateFormatter().string(from: date).prefix(10)) }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new primary key for a purpose now; osmose-keyd re-encrypts what the old one protects.",
            discussion: """
                column, blind-index: the old primary becomes decrypt-only at once; new data goes under the new key. Start \
                osmose-keyd (systemctl start osmose-keyd) to re-encrypt in the background; the old key is retired when nothing uses it.

                journal-signing: writes a new Ed25519 signing key to --key-out (mode 0600) and records it as pending. Install \
                it as a second credential of osmose-journald (LoadCredentialEncrypted=journal-signing-key-<n>:…) and restart \
                it: checkpoints then carry both signatures. osmose-keyd promotes the new key once a checkpoint carries its \
                signature, and retires the old one after policies/keys.yaml's co_signing_hours. Add the printed verifier \
                key to journal.verifier_keys wherever journal verify runs, and give it to witnesses and auditors.

                backup-signing: writes a new Ed25519 backup-signing key to --key-out (mode 0600); the first one is recorded as \
                primary, a later one as pending. Install it as a credential of osmose-backupd's units and of PostgreSQL's \
                archive_command (backup-signing-key, or backup-signing-key-<n> beside the current one during a rollover): every \
                file written to the store then carries its signature. osmose-keyd promotes a pending key once the newest backup \
                carries its signature, and retires the old one after co_signing_hours. Add the printed verifier key to \
                backup.verifier_keys on every machine that verifies or restores, and to the sysadmin's offline records.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "column, blind-index, journal-signing or backup-signing.") var purpose: String
        @Option(help: "Why (journaled).") var reason: String
        @Option(help: "The master key file (column, blind-index).") var masterKey: String?
        @Option(help: "journal-signing, backup-signing: where to write the new signing key (created, never overwritten).") var keyOut: String?
        @Flag(help: "Say what would happen; change nothing.") var dryRun = false

        func validate() throws {
            guard (1...200).contains(reason.count) else { throw ValidationError("--reason must be 1 to 200 characters") }
            if purpose == "journal-signing" || purpose == "backup-signing" {
                guard keyOut != nil else { throw ValidationError("--purpose \(purpose) needs --key-out FILE for the new signing key") }
                return
            }
            guard let purpose = DataKeyPurpose(rawValue: purpose), purpose == .column || purpose == .blindIndex else {
                throw ValidationError("--purpose must be column, blind-index, journal-signing or backup-signing")
            }
            guard masterKey != nil else { throw ValidationError("--purpose \(purpose.rawValue) needs --master-key FILE") }
        }

        func run() async throws {
            try await reportingFailures {
                if purpose == "journal-signing", let keyOut { return try await rollSigningKey(to: keyOut) }
                if purpose == "backup-signing", let keyOut { return try await rollBackupSigningKey(to: keyOut) }
                let purpose = DataKeyPurpose(rawValue: purpose)!
                let policy = try loadKeyPolicy(options)
                let master = try MasterKey.load(path: masterKey!)
                if dryRun {
                    let total = try await options.withConnection { connection in
                        try await KeyRotation.rehearse(
                            purpose: purpose, reason: reason, master: master, cryptoperiodDays: policy.cryptoperiodDays[purpose.rawValue] ?? 365,
                            actor: keyOperator, on: connection)
                    }
                    print("would make a new primary \(purpose.rawValue) key, demote the current one, and queue \(total) values for re-encryption (master key \(master.fingerprint) checked); nothing changed")
                    return
                }
                let rotation = try await options.withConnection { connection in
                    try await connection.transaction { [reason] connection in
                        try KeyRotation.start(
                            purpose: purpose, reason: reason, master: master, cryptoperiodDays: policy.cryptoperiodDays[purpose.rawValue] ?? 365,
                            actor: keyOperator, on: connection)
                    }
                }
                print("rotation \(rotation.id): new primary \(purpose.rawValue) key \(rotation.toKey); keys \(rotation.fromKeys) are decrypt-only until osmose-keyd has re-encrypted their values")
            }
        }

        /// Starts a journal signing-key rollover: the key file is written (exclusively)
        /// before the transaction commits, and removed again if it does not.
        func rollSigningKey(to path: String) async throws {
            let origin = try options.loadConfiguration().journal.origin
            let signer = try NoteSignerKey.generate(name: origin)
            if dryRun {
                if FileManager.default.fileExists(atPath: path) { throw ValidationError("\(path) exists; choose a new file (keys are never overwritten)") }
            } else {
                try writeSecretFile(path, signer.exposedEncoding() + "\n")
            }
            let id = try await recordingKey(writtenTo: dryRun ? nil : path, options) { [reason, dryRun] connection in
                try SigningKeyRollover.start(signer: signer, reason: reason, dryRun: dryRun, actor: keyOperator, on: connection)
            }
            if dryRun {
                print("would write a new journal signing key for \(origin) to \(path) and record it as pending (keyring id \(id)); nothing changed")
                return
            }
            print("""
                journal signing key \(id) written to \(path) and recorded as pending
                verifier key: \(signer.verifierKey.encoded)
                next: systemd-creds encrypt --name=journal-signing-key-\(id) \(path) /etc/osmose/credentials/journal-signing-key-\(id).cred,
                      add LoadCredentialEncrypted=journal-signing-key-\(id):/etc/osmose/credentials/journal-signing-key-\(id).cred
                      to osmose-journald (a drop-in), restart it, shred \(path); add the verifier key to journal.verifier_keys
                """)
        }

        /// Makes a backup-signing key (named after the journal's origin: `<origin>/backup`)
        /// and records it, primary when it is the first, else pending; the key file is
        /// written (exclusively) before the transaction commits, and removed if it does not.
        func rollBackupSigningKey(to path: String) async throws {
            let name = try options.loadConfiguration().journal.origin + "/backup"
            let signer = try NoteSignerKey.generate(name: name)
            if dryRun {
                if FileManager.default.fileExists(atPath: path) { throw ValidationError("\(path) exists; choose a new file (keys are never overwritten)") }
            } else {
                try writeSecretFile(path, signer.exposedEncoding() + "\n")
            }
            let recorded = try await recordingKeyWithState(writtenTo: dryRun ? nil : path, options) { [reason, dryRun] connection in
                let started = try BackupSigningKeys.start(signer: signer, reason: reason, dryRun: dryRun, actor: keyOperator, on: connection)
                return (started.id, started.state.displayName)
            }
            if dryRun {
                print("would write a new backup-signing key \(name) to \(path) and record it as \(recorded.state) (keyring id \(recorded.id)); nothing changed")
                return
            }
            let credential = recorded.state == "primary" ? "backup-signing-key" : "backup-signing-key-\(recorded.id)"
            print("""
                backup-signing key \(recorded.id) written to \(path) and recorded as \(recorded.state)
                verifier key: \(signer.verifierKey.encoded)
                next: systemd-creds encrypt --name=\(credential) \(path) /etc/osmose/credentials/\(credential).cred,
                      add LoadCredentialEncrypted=\(credential):/etc/osmose/credentials/\(credential).cred to osmose-backupd's units
                      and to PostgreSQL's unit (a drop-in: archive_command runs osmose-backupd wal-push), restart PostgreSQL, shred \(path);
                      add the verifier key to backup.verifier_keys on every machine that verifies or restores, and write it in the offline records
                """)
        }
    }

    struct RotateMaster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-master",
            abstract: "Rewrap every data key under a new master key (seconds; no value is re-encrypted).",
            discussion: """
                Then install the new key as the master-key credential of osmose-care and osmose-keyd and restart them; \
                until then they keep the keys they have loaded.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The current master key file.") var masterKey: String
        @Option(help: "The new master key file (osmosectl keys generate-master).") var newMasterKey: String
        @Option(help: "Why (journaled).") var reason: String
        @Flag(help: "Check both keys; change nothing.") var dryRun = false

        func run() async throws {
            try await reportingFailures {
                guard (1...200).contains(reason.count) else { throw ValidationError("--reason must be 1 to 200 characters") }
                let old = try MasterKey.load(path: masterKey)
                let new = try MasterKey.load(path: newMasterKey)
                let count = try await options.withConnection { connection in
                    try await KeyringSetup.rotateMaster(from: old, to: new, reason: reason, dryRun: dryRun, actor: keyOperator, on: connection)
                }
                if dryRun {
                    print("would rewrap \(count) data keys (both master keys check out); nothing changed")
                } else {
                    print("\(count) data keys rewrapped: master key \(old.fingerprint) → \(new.fingerprint); install the new key and restart the daemons")
                }
            }
        }
    }

    struct AddRecipient: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-recipient",
            abstract: "Add an age recipient (X25519, or hybrid post-quantum) that new backups are encrypted to.",
            discussion: """
                Best: make the identity on an offline machine (age-keygen -o identity.txt, or age-keygen -pq with age 1.3) \
                and pass only its recipient (--recipient age1… or age1pq1…). Or let this command make one (--identity-out FILE, \
                mode 0600, never overwritten; --post-quantum for a hybrid ML-KEM-768 + X25519 one) and move that file to the key \
                safe at once. Backups are encrypted to every primary recipient; any one identity restores them. Classic and \
                post-quantum recipients are never mixed in one backup: --replace switches kind, taking the other kind's \
                primaries out of use (decrypt-only) in the same transaction. Set backup.recipients to match.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "The recipient (age1… or age1pq1…), when its identity was made elsewhere.") var recipient: String?
        @Option(help: "Make a new identity and write it here (age-keygen format).") var identityOut: String?
        @Flag(help: "With --identity-out: make a hybrid post-quantum identity (ML-KEM-768 + X25519, age1pq1…).") var postQuantum = false
        @Flag(help: "Switch kind: the primary recipients of the other kind become decrypt-only.") var replace = false
        @Option(help: "Who holds the identity, e.g. \"key safe B, envelope 3\" (recorded).") var label: String
        @Option(help: "Why (journaled).") var reason: String
        @Flag(help: "Check; change nothing and write no file.") var dryRun = false

        func validate() throws {
            guard (recipient == nil) != (identityOut == nil) else { throw ValidationError("pass either --recipient age1… or --identity-out FILE") }
            guard !postQuantum || identityOut != nil else { throw ValidationError("--post-quantum makes a new identity: pass it with --identity-out FILE") }
        }

        func run() async throws {
            try await reportingFailures {
                let created = ISO8601DateFormatter().string(from: Date())
                var identityFile: String?
                let chosen: any AgePublicRecipient
                if identityOut == nil {
                    chosen = try AgeRecipients.parse(recipient!)
                } else if postQuantum {
                    let identity = try AgeHybridIdentity.generate()
                    chosen = identity.recipient
                    identityFile = identity.exposedFile(created: created)
                } else {
                    let identity = try AgeIdentity.generate()
                    chosen = identity.recipient
                    identityFile = identity.exposedFile(created: created)
                }
                if let identityOut, let identityFile {
                    if dryRun {
                        if FileManager.default.fileExists(atPath: identityOut) { throw ValidationError("\(identityOut) exists; identities are never overwritten") }
                    } else {
                        try writeSecretFile(identityOut, identityFile)
                    }
                }
                let id = try await recordingKey(writtenTo: dryRun ? nil : identityOut, options) { [label, reason, dryRun, replace] connection in
                    try BackupRecipients.add(
                        chosen, label: label, reason: reason, dryRun: dryRun, replacingOtherKind: replace, actor: keyOperator, on: connection)
                }
                if dryRun {
                    print("would record backup recipient \(chosen.encoded) (fingerprint \(chosen.fingerprint)) as id \(id); nothing changed")
                    return
                }
                print("backup recipient \(id) recorded: \(chosen.encoded) (fingerprint \(chosen.fingerprint)); new backups are encrypted to it")
                if let identityOut {
                    print("its identity is in \(identityOut): store it in the key safe (\(label)) and remove it from this machine")
                }
            }
        }
    }

    struct RetireRecipient: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "retire-recipient",
            abstract: "Stop encrypting new backups to a recipient; its identity stays needed while a retained backup uses it.",
            discussion: "Refused for the last primary recipient: add its successor first.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The recipient's keyring id (osmosectl keys status).") var id: Int
        @Option(help: "Why (journaled).") var reason: String
        @Flag(help: "Check; change nothing.") var dryRun = false

        func run() async throws {
            try await reportingFailures {
                let record = try await options.withConnection { connection in
                    try await connection.transaction { [id, reason, dryRun] connection in
                        try BackupRecipients.retire(id: id, reason: reason, dryRun: dryRun, actor: keyOperator, on: connection)
                    }
                }
                print(
                    dryRun
                        ? "would stop encrypting new backups to recipient \(record.id) (\(record.fingerprint)); nothing changed"
                        : "recipient \(record.id) (\(record.fingerprint)) receives no new backup; keep its identity (\(record.label)) while a retained backup needs it")
            }
        }
    }

    struct Destroy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy a key: erase a data key's wrapped copy, or record (and do) the destruction of a signing key's private half.",
            discussion: """
                Data keys: refused for a primary key, and while values still need the key unless --force. Signing keys \
                (--purpose journal-signing or backup-signing): refused for the primary, and for a key still signing unless --force; the verifier \
                key stays known, so what it signed stays verifiable; --key-file overwrites and removes the private half. Leaves \
                evidence in keys.destructions or keys.public_key_destructions, and the journal.
                """)
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The key id.") var key: Int
        @Option(help: "journal-signing, backup-signing or backup-recipient (default: a data key).") var purpose: String?
        @Option(help: "Why (journaled, kept as evidence).") var reason: String
        @Option(help: "journal-signing, backup-signing: the private key file to overwrite and remove.") var keyFile: String?
        @Flag(help: "Destroy even though values still need the key (crypto-shredding), or the key still signs.") var force = false
        @Flag(help: "Report what would become unreadable; change nothing.") var dryRun = false
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            if let purpose, purpose != "journal-signing" && purpose != "backup-signing" && purpose != "backup-recipient" {
                throw ValidationError("--purpose must be journal-signing, backup-signing or backup-recipient (or absent for a data key)")
            }
            if keyFile != nil && purpose != "journal-signing" && purpose != "backup-signing" {
                throw ValidationError("--key-file is for --purpose journal-signing or backup-signing")
            }
        }

        func run() async throws {
            try await reportingFailures {
                if purpose != nil { return try await destroySigningKey() }
                let report = try await options.withConnection { connection in
                    try await connection.transaction { [key, reason, force, dryRun] connection in
                        try KeyInventory.destroy(keyID: key, reason: reason, force: force, dryRun: dryRun, actor: keyOperator, on: connection)
                    }
                }
                if json { return try printJSON(report) }
                let lost = report.unreadable.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                print("\(report.destroyed ? "destroyed" : "would destroy") key \(report.keyID) (\(report.purpose), was \(report.stateBefore)); unreadable: \(lost.isEmpty ? "nothing" : lost)")
                if !report.stillInBackups.isEmpty {
                    print("note: \(report.stillInBackups.count) retained backups still hold this key (\(report.stillInBackups.prefix(3).joined(separator: ", "))…): what it protected stays readable from them, with the master key of their day, until they are pruned")
                }
            }
        }

        func destroySigningKey() async throws {
            let fileKey = try keyFile.map { keyFile in
                guard let data = FileManager.default.contents(atPath: keyFile) else { throw ValidationError("cannot read \(keyFile)") }
                return try NoteSignerKey(encoded: String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            }
            let report = try await options.withConnection { connection in
                try await connection.transaction { [key, reason, force, dryRun, keyFile, purpose] connection in
                    let report = try KeyInventory.destroyPublicKey(keyID: key, reason: reason, force: force, dryRun: dryRun, actor: keyOperator, on: connection)
                    guard report.purpose == purpose else { throw ValidationError("key \(key) is a \(report.purpose) key, not \(purpose ?? "")") }
                    if let fileKey, fileKey.verifierKey.encoded != report.publicKey {
                        throw ValidationError("\(keyFile ?? "") holds \(fileKey.verifierKey.encoded), not signing key \(key)")
                    }
                    return report
                }
            }
            if let keyFile, report.destroyed { try shredFile(keyFile) }
            if json { return try printJSON(report) }
            if report.purpose == "backup-recipient" {
                let lost = report.unrestorableBackups.isEmpty ? "none" : report.unrestorableBackups.joined(separator: ", ")
                print("\(report.destroyed ? "recorded the destruction of" : "would record the destruction of") backup recipient \(report.keyID)'s identity (was \(report.stateBefore)); backups that become unrestorable: \(lost)")
                return
            }
            print(
                "\(report.destroyed ? "destroyed" : "would destroy") \(report.purpose == "backup-signing" ? "backup-signing" : "journal signing") key \(report.keyID) (was \(report.stateBefore))\(keyFile.map { report.destroyed ? "; \($0) overwritten and removed" : "; would overwrite and remove \($0)" } ?? ""); its verifier key \(report.publicKey) stays known")
        }
    }
}

/// The operator running a key command, as the journal and the key records name them.
private var keyOperator: SystemActor { operatorActor(.sysadmin) }

/// The key policy (`policies/keys.yaml`), or its defaults when the file is absent.
func loadKeyPolicy(_ options: GlobalOptions) throws -> KeyPolicy {
    let path = try options.loadConfiguration().keyPolicyPath
    return FileManager.default.fileExists(atPath: path) ? try KeyPolicy.load(path: path) : .defaults
}

/// ``recordingKey(writtenTo:_:_:)`` for a record that returns its id and the state it got.
private func recordingKeyWithState(
    writtenTo file: String?, _ options: GlobalOptions, _ body: @escaping @Sendable (isolated Connection) throws -> (id: Int, state: String)
) async throws -> (id: Int, state: String) {
    do {
        return try await options.withConnection { connection in try await connection.transaction { try body($0) } }
    } catch {
        if let file { unlink(file) }
        throw error
    }
}
