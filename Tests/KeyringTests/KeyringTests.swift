import Cryptography
import Foundation
import Keyring
import Store
import Testing
import TestSupport

@Suite("Keyring: master key, data keys, column ciphertexts and blind indexes")
struct KeyringTests {
    func prepared(_ name: String) async throws -> (TestDatabase, Connection, MasterKey) {
        let database = try await TestDatabase.create(name)
        let connection = try await Connection.connect(database.connectionString, logger: testLogger)
        try await migrate(connection)
        let master = try MasterKey.generate()
        try await DataKeyRing.initialise(on: connection, master: master, createdBy: "test")
        return (database, connection, master)
    }

    /// Runs `body` with ``prepared(_:)``'s database, connection and master key; closed and dropped on every path.
    func withPrepared<Result>(_ name: String, _ body: (TestDatabase, Connection, MasterKey) async throws -> Result) async throws -> Result {
        try await withResource(try await prepared(name), release: { await $0.1.close(); await $0.0.drop() }) { try await body($0.0, $0.1, $0.2) }
    }

    @Test("Initialising twice creates one primary key per purpose, wrapped by the master key")
    func initialise() async throws {
        try await withPrepared("keyinit") { database, connection, master in
            #expect(try await DataKeyRing.initialise(on: connection, master: master, createdBy: "test").isEmpty)
            let rows = try await connection.query("SELECT purpose, state, length(wrapped_key) AS size, master_fingerprint FROM keys.data_keys ORDER BY purpose").rows
            #expect(try rows.map { try $0.string("purpose") } == ["blind-index", "column", "pseudonymisation"])
            #expect(try rows.allSatisfy { try $0.string("state") == "primary" && $0.int("size") == 60 && $0.string("master_fingerprint") == master.fingerprint })
        }
    }

    @Test("A wrong master key is refused by name, before anything is decrypted or changed")
    func wrongMasterKey() async throws {
        try await withPrepared("keywrong") { database, connection, master in
            let other = try MasterKey.generate()
            let error = await #expect(throws: KeyringError.self) { try await DataKeyRing.load(on: connection, master: other) }
            #expect(error?.code == .wrongMasterKey)
            #expect(error?.description.contains(other.fingerprint) == true)
            let initError = await #expect(throws: KeyringError.self) { try await DataKeyRing.initialise(on: connection, master: other, createdBy: "test") }
            #expect(initError?.code == .wrongMasterKey)
            #expect(try await connection.query("SELECT count(*) AS n FROM keys.data_keys").rows[0].int("n") == 3)
            // A wrapped key bound to another id does not unwrap either.
            try await connection.execute("UPDATE keys.data_keys SET wrapped_key = (SELECT wrapped_key FROM keys.data_keys WHERE id = 2) WHERE id = 1")
            let swapped = await #expect(throws: KeyringError.self) { try await DataKeyRing.load(on: connection, master: master) }
            #expect(swapped?.description.contains("data key 1") == true)
        }
    }

    @Test("A ciphertext moved to another row or column, or damaged, fails with a clear error, never garbage")
    func columnBinding() async throws {
        try await withPrepared("keycipher") { database, connection, master in
            let cipher = ColumnCipher(ring: try await DataKeyRing.load(on: connection, master: master))
            let here = ColumnCipher.Location(table: "care.patients", column: "last_name", rowID: "row-1")
            let stored = try cipher.encrypt("Dupont", for: here)
            #expect(try cipher.decryptString(stored, at: here) == "Dupont")
            #expect(ColumnCipher.keyID(of: stored) == 2 || ColumnCipher.keyID(of: stored) == 1 || ColumnCipher.keyID(of: stored) == 3)
            for elsewhere in [
                ColumnCipher.Location(table: "care.patients", column: "last_name", rowID: "row-2"),
                ColumnCipher.Location(table: "care.patients", column: "first_name", rowID: "row-1"),
                ColumnCipher.Location(table: "care.episodes", column: "last_name", rowID: "row-1"),
            ] {
                let error = #expect(throws: KeyringError.self) { try cipher.decrypt(stored, at: elsewhere) }
                #expect(error?.code == .undecryptable)
            }
            var damaged = stored
            damaged[damaged.count - 20] ^= 0x01
            #expect(throws: KeyringError.self) { try cipher.decrypt(damaged, at: here) }
            var otherKey = stored
            otherKey[4] = 99
            let unknown = #expect(throws: KeyringError.self) { try cipher.decrypt(otherKey, at: here) }
            #expect(unknown?.code == .unknownKey)
            #expect(throws: KeyringError.self) { try cipher.decrypt([1, 2, 3], at: here) }
            #expect(!String(describing: stored).contains("Dupont"))
        }
    }

    @Test("Blind-index tokens ignore case, accents and hyphens, and differ by domain and value")
    func blindIndex() async throws {
        try await withPrepared("keyblind") { database, connection, master in
            let index = BlindIndex(ring: try await DataKeyRing.load(on: connection, master: master))
            let reference = try index.token(domain: "patient.name-birth", parts: ["Dupont-Durand", "Ségolène", "1984-03-12"])
            #expect(try index.token(domain: "patient.name-birth", parts: ["DUPONT  durand", "segolene", "1984-03-12"]) == reference)
            #expect(try index.token(domain: "patient.name-birth", parts: ["Dupont", "Ségolène", "1984-03-12"]) != reference)
            #expect(try index.token(domain: "patient.other", parts: ["Dupont-Durand", "Ségolène", "1984-03-12"]) != reference)
            #expect(try index.token(domain: "patient.name-birth", parts: ["Dupont-Durand", "Ségolène", "1984-03-13"]) != reference)
            #expect(reference.count == 32)
            #expect(BlindIndex.normalise("  d’Aÿ-Champagne ") == "D AY CHAMPAGNE")
        }
    }

    @Test("A master key file must be exactly 32 bytes")
    func masterKeyFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mk-\(UUID().uuidString.prefix(6))").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(repeating: 7, count: 31).write(to: URL(fileURLWithPath: path))
        let short = #expect(throws: KeyringError.self) { try MasterKey.load(path: path) }
        #expect(short?.code == .masterKeyUnavailable)
        let missing = #expect(throws: KeyringError.self) { try MasterKey.load(path: path + ".absent") }
        #expect(missing?.code == .masterKeyUnavailable)
        try Data(repeating: 7, count: 32).write(to: URL(fileURLWithPath: path))
        let key = try MasterKey.load(path: path)
        #expect(key.fingerprint.count == 16)
        #expect(!String(describing: key).contains("0707"))
    }

    @Test("The master key comes from the credential's file when the unit passes one, else from the configured file; neither says what to pass")
    func masterKeySources() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("mk-\(UUID().uuidString.prefix(6))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (credential, configured) = ("\(directory)/\(MasterKey.credentialName)", "\(directory)/configured.key")
        try Data(repeating: 1, count: 32).write(to: URL(fileURLWithPath: credential))
        try Data(repeating: 2, count: 32).write(to: URL(fileURLWithPath: configured))
        let fromCredential = try MasterKey.load(credential: credential, orFile: configured, setting: "keys.master_key_file")
        #expect(fromCredential.fingerprint == (try MasterKey.load(path: credential)).fingerprint)
        let fromFile = try MasterKey.load(credential: nil, orFile: configured, setting: "keys.master_key_file")
        #expect(fromFile.fingerprint == (try MasterKey.load(path: configured)).fingerprint && fromFile.fingerprint != fromCredential.fingerprint)
        let neither = #expect(throws: KeyringError.self) { try MasterKey.load(credential: nil, orFile: nil, setting: "care.master_key_file") }
        #expect(neither?.code == .masterKeyUnavailable)
        #expect(neither?.message.contains("LoadCredential=master-key") == true && neither?.message.contains("care.master_key_file") == true)
    }
}
