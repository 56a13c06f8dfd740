import ArgumentParser
import Foundation
import Glibc
import KeyService
import Keyring
import Settings
import Store

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "The keyring: master key and data keys.",
        subcommands: [GenerateMaster.self, Initialise.self, Status.self, Rotate.self, RotateMaster.self, Destroy.self])

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
                let descriptor = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard descriptor >= 0 else { throw ValidationError("cannot create \(out): \(String(cString: strerror(errno)))") }
                defer { close(descriptor) }
                guard write(descriptor, bytes, bytes.count) == bytes.count, fsync(descriptor) == 0 else {
                    throw ValidationError("writing \(out) failed: \(String(cString: strerror(errno)))")
                }
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
                let connection = try await options.connect()
                let created = try await DataKeyRing.initialise(on: connection, master: master, createdBy: operatorIdentity)
                if !created.isEmpty {
                    try await connection.transaction { connection in
                        try recordAdministration(.keyAdmin, objectType: "data-key", objectID: created.map(String.init).joined(separator: ","), reason: "initialised", on: connection)
                    }
                }
                await connection.close()
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
            let rotations: [RotationRecord]
            let backupCatalogue: String
        }

        func run() async throws {
            try await reportingFailures {
                let policy = try loadKeyPolicy(options)
                let connection = try await options.connect()
                let (keys, rotations) = try await connection.transaction(isolation: .repeatableRead) { connection in
                    (try KeyInventory.status(policy: policy, on: connection), try KeyRotation.all(on: connection))
                }
                await connection.close()
                let catalogue = "no backup is recorded yet: the backup catalogue comes with osmose-backupd"
                if json { return try printJSON(Report(keys: keys, rotations: rotations, backupCatalogue: catalogue)) }
                printTable(
                    ["KEY", "PURPOSE", "STATE", "CREATED", "SINCE", "ROTATES", "VALUES", "WHERE"],
                    keys.map { key in
                        [
                            "\(key.id)", key.purpose, key.state, Self.day(key.createdAt), Self.day(key.stateChangedAt), key.plannedRotation.map(Self.day) ?? "-",
                            "\(key.totalValues)", key.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
                        ]
                    })
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
                The old primary becomes decrypt-only at once; new data goes under the new key. Start osmose-keyd \
                (systemctl start osmose-keyd) to re-encrypt in the background; the old key is retired when nothing uses it.
                """)
        @OptionGroup var options: GlobalOptions
        @Option(help: "column or blind-index.") var purpose: String
        @Option(help: "Why (journaled).") var reason: String
        @Option(help: "The master key file.") var masterKey: String
        @Flag(help: "Say what would happen; change nothing.") var dryRun = false

        func validate() throws {
            guard let purpose = DataKeyPurpose(rawValue: purpose), purpose == .column || purpose == .blindIndex else {
                throw ValidationError("--purpose must be column or blind-index")
            }
            guard (1...200).contains(reason.count) else { throw ValidationError("--reason must be 1 to 200 characters") }
        }

        func run() async throws {
            try await reportingFailures {
                let purpose = DataKeyPurpose(rawValue: purpose)!
                let policy = try loadKeyPolicy(options)
                let master = try MasterKey.load(path: masterKey)
                let connection = try await options.connect()
                if dryRun {
                    let census = try await connection.perform { try KeyRotation.census(purpose, on: $0) }
                    await connection.close()
                    let total = census.values.flatMap(\.values).reduce(0, +)
                    print("would make a new primary \(purpose.rawValue) key, demote the current one, and queue \(total) values for re-encryption")
                    return
                }
                let rotation = try await connection.transaction { [reason] connection in
                    try KeyRotation.start(
                        purpose: purpose, reason: reason, master: master, cryptoperiodDays: policy.cryptoperiodDays[purpose.rawValue] ?? 365,
                        actor: .operator(operatorIdentity), on: connection)
                }
                await connection.close()
                print("rotation \(rotation.id): new primary \(purpose.rawValue) key \(rotation.toKey); keys \(rotation.fromKeys) are decrypt-only until osmose-keyd has re-encrypted their values")
            }
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
                let connection = try await options.connect()
                let outcome: Result<Int, any Error>
                do {
                    outcome = .success(try await connection.transaction { [reason, dryRun] connection in
                        let count = try KeyLifecycle.rewrap(from: old, to: new, on: connection)
                        if dryRun { throw DryRunRollback(count: count) }
                        try recordAdministration(
                            .keyAdmin, objectType: "master-key", objectID: new.fingerprint,
                            reason: "\(count) data keys rewrapped from master key \(old.fingerprint): \(reason)", on: connection)
                        return count
                    })
                } catch {
                    outcome = .failure(error)
                }
                await connection.close()
                switch outcome {
                case .success(let count):
                    print("\(count) data keys rewrapped: master key \(old.fingerprint) → \(new.fingerprint); install the new key and restart the daemons")
                case .failure(let rollback as DryRunRollback):
                    print("would rewrap \(rollback.count) data keys (both master keys check out); nothing changed")
                case .failure(let error):
                    throw error
                }
            }
        }
    }

    struct Destroy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy a data key: erase its wrapped copy, so everything under it is unreadable for good.",
            discussion: "Refused for a primary key, and while values still need the key unless --force. Leaves evidence in keys.destructions and the journal.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The key id.") var key: Int
        @Option(help: "Why (journaled, kept as evidence).") var reason: String
        @Flag(help: "Destroy even though values still need the key (crypto-shredding).") var force = false
        @Flag(help: "Report what would become unreadable; change nothing.") var dryRun = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await reportingFailures {
                let connection = try await options.connect()
                let report = try await connection.transaction { [key, reason, force, dryRun] connection in
                    try KeyInventory.destroy(keyID: key, reason: reason, force: force, dryRun: dryRun, actor: .operator(operatorIdentity), on: connection)
                }
                await connection.close()
                if json { return try printJSON(report) }
                let lost = report.unreadable.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                print("\(report.destroyed ? "destroyed" : "would destroy") key \(report.keyID) (\(report.purpose), was \(report.stateBefore)); unreadable: \(lost.isEmpty ? "nothing" : lost)")
            }
        }
    }
}

/// Thrown inside a transaction to roll a dry run back after it has checked everything.
struct DryRunRollback: Error {
    let count: Int
}

/// The key policy (`policies/keys.yaml`), or its defaults when the file is absent.
func loadKeyPolicy(_ options: GlobalOptions) throws -> KeyPolicy {
    let path = try options.loadConfiguration().keyPolicyPath
    return FileManager.default.fileExists(atPath: path) ? try KeyPolicy.load(path: path) : .defaults
}
