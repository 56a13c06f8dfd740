import ArgumentParser
import Foundation
import Glibc
import Keyring

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "The keyring: master key and data keys.",
        subcommands: [GenerateMaster.self, Initialise.self])

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
}
