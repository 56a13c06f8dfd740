import Age
import Archive
import Backup
import Cryptography
import Foundation
import Journal
import Testing
import TestSupport

func scratchDirectory(_ label: String) throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-\(label)-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return directory
}

@Suite("WAL archiving")
struct WALArchiveTests {
    @Test("A segment is stored signed and durably, and fetched identical; a retry of the same segment is acknowledged, a different one refused; damage and absence are told apart")
    func pushAndFetch() throws {
        let store = try scratchDirectory("walstore")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let identity = try AgeIdentity.generate()
        let key = try NoteSignerKey.generate(name: "test.osmose.example/backup")
        let signer = try BackupSigner(keys: [key])
        let trust = BackupTrust(keys: [BackupTrust.Key(verifier: key.verifierKey)])
        var generator = TestSeed.generator(test: "WALArchiveTests.pushAndFetch")
        let archive = WALArchive(store: store)
        let name = "000000010000000000000003"
        let segment = generator.bytes(count: 16 << 20)
        try Data(segment).write(to: URL(fileURLWithPath: "\(store)/segment"))
        guard case .stored = try archive.push(segment: "\(store)/segment", name: name, recipients: [identity.recipient], signer: signer) else {
            Issue.record("not stored")
            return
        }
        // The signature states the segment's SHA-256 and the stored file's.
        let note = try String(contentsOfFile: "\(store)/wal/\(name).sig", encoding: .utf8)
        let statement = try trust.authenticate(note, file: "wal/\(name).sig", kind: .wal, subject: name).statement
        #expect(statement.value("sha256") == hexDigest(SHA256.hash(segment)))
        let stored = try FileBlocks.sha256(ofFile: "\(store)/wal/\(name).tar.zst.age")
        #expect(statement.file("\(name).tar.zst.age")?.sha256 == stored.sha256 && statement.file("\(name).tar.zst.age")?.bytes == stored.size)
        #expect(!FileManager.default.fileExists(atPath: "\(store)/wal/\(name).tar.zst.age.new"), "nothing left under the temporary name")

        #expect(try archive.push(segment: "\(store)/segment", name: name, recipients: [identity.recipient], signer: signer) == .alreadyStored)
        try Data(generator.bytes(count: 16)).write(to: URL(fileURLWithPath: "\(store)/other"))
        #expect(throws: ArchiveError.self) { try archive.push(segment: "\(store)/other", name: name, recipients: [identity.recipient], signer: signer) }
        #expect(throws: ArchiveError.self) { try archive.push(segment: "\(store)/segment", name: "../../etc/passwd", recipients: [identity.recipient], signer: signer) }
        #expect(try archive.names() == [name])

        #expect(try archive.fetch(name: name, to: "\(store)/fetched", identities: [identity], trust: trust))
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: "\(store)/fetched"))) == segment)
        #expect(try archive.fetch(name: "000000010000000000000004", to: "\(store)/none", identities: [identity], trust: trust) == false)
        #expect(throws: (any Error).self) { try archive.fetch(name: name, to: "\(store)/x", identities: [try AgeIdentity.generate()], trust: trust) }

        let path = "\(store)/wal/\(name).tar.zst.age"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 100] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: (any Error).self) { try archive.fetch(name: name, to: "\(store)/y", identities: [identity], trust: trust) }
        #expect(!FileManager.default.fileExists(atPath: "\(store)/y"), "nothing written from a damaged segment")
        // PostgreSQL's retry of the same segment repairs a stored file that no longer matches its signature.
        #expect(try archive.push(segment: "\(store)/segment", name: name, recipients: [identity.recipient], signer: signer) != .alreadyStored)
        #expect(try archive.fetch(name: name, to: "\(store)/repaired", identities: [identity], trust: trust))
    }

    @Test("A push interrupted after the archive but before its signature is redone by the retry; until then the file is refused, never taken as complete")
    func interruptedPush() throws {
        let store = try scratchDirectory("walcrash")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let identity = try AgeIdentity.generate()
        let key = try NoteSignerKey.generate(name: "test.osmose.example/backup")
        let signer = try BackupSigner(keys: [key])
        let trust = BackupTrust(keys: [BackupTrust.Key(verifier: key.verifierKey)])
        var generator = TestSeed.generator(test: "WALArchiveTests.interruptedPush")
        let archive = WALArchive(store: store)
        let name = "000000010000000000000007"
        try Data(generator.bytes(count: 100_000)).write(to: URL(fileURLWithPath: "\(store)/segment"))
        _ = try archive.push(segment: "\(store)/segment", name: name, recipients: [identity.recipient], signer: signer)
        unlink("\(store)/wal/\(name).sig")
        #expect(throws: BackupIntegrityError.self) { try archive.fetch(name: name, to: "\(store)/early", identities: [identity], trust: trust) }
        guard case .stored = try archive.push(segment: "\(store)/segment", name: name, recipients: [identity.recipient], signer: signer) else {
            Issue.record("the retry did not rewrite the unsigned archive")
            return
        }
        #expect(try archive.fetch(name: name, to: "\(store)/fetched", identities: [identity], trust: trust))
    }
}
