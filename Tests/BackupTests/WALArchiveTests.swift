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
        #expect(!FileManager.default.fileExists(atPath: "\(store)/y.partial"), "nor left under the temporary name")
        #expect(!FileManager.default.fileExists(atPath: "\(store)/x") && !FileManager.default.fileExists(atPath: "\(store)/x.partial"))
        // PostgreSQL's retry of the same segment repairs a stored file that no longer matches its signature.
        #expect(try archive.push(segment: "\(store)/segment", name: name, recipients: [identity.recipient], signer: signer) != .alreadyStored)
        #expect(try archive.fetch(name: name, to: "\(store)/repaired", identities: [identity], trust: trust))
    }

    @Test("The push log names each segment once: a new push appends one line, a retry none, and a name logged twice (an archive removed by hand) is read once")
    func pushLog() throws {
        let store = try scratchDirectory("walpushlog")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let identity = try AgeIdentity.generate()
        let signer = try BackupSigner(keys: [try NoteSignerKey.generate(name: "test.osmose.example/backup")])
        var generator = TestSeed.generator(test: "WALArchiveTests.pushLog")
        let archive = WALArchive(store: store)
        let names = ["000000010000000000000001", "000000010000000000000002", "000000010000000000000003"]
        for name in names {
            try Data(generator.bytes(count: 4096)).write(to: URL(fileURLWithPath: "\(store)/\(name)"))
            _ = try archive.push(segment: "\(store)/\(name)", name: name, recipients: [identity.recipient], signer: signer)
        }
        func lines() throws -> [Substring] { try String(contentsOfFile: "\(store)/wal/pushed.log", encoding: .utf8).split(separator: "\n") }
        #expect(try lines().count == 3)
        #expect(try archive.push(segment: "\(store)/\(names[1])", name: names[1], recipients: [identity.recipient], signer: signer) == .alreadyStored)
        #expect(try lines().count == 3, "a retry of a stored segment adds no line")
        unlink("\(store)/wal/\(names[1]).tar.zst.age")
        unlink("\(store)/wal/\(names[1]).sig")
        _ = try archive.push(segment: "\(store)/\(names[1])", name: names[1], recipients: [identity.recipient], signer: signer)
        #expect(try lines().count == 4, "pushed again after its archive was removed: logged again, without reading the log")
        #expect(try archive.pushedNames() == names)
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
