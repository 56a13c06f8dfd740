import Age
import Archive
import Backup
import Cryptography
import Foundation
import Testing
import TestSupport

func scratchDirectory(_ label: String) throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-\(label)-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return directory
}

@Suite("WAL archiving")
struct WALArchiveTests {
    @Test("A segment is stored durably and fetched identical; a retry of the same segment is acknowledged, a different one refused; damage and absence are told apart")
    func pushAndFetch() throws {
        let store = try scratchDirectory("walstore")
        defer { try? FileManager.default.removeItem(atPath: store) }
        let identity = try AgeIdentity.generate()
        let archive = WALArchive(store: store)
        let name = "000000010000000000000003"
        let segment = try SecureRandom.bytes(count: 16 << 20)
        try Data(segment).write(to: URL(fileURLWithPath: "\(store)/segment"))
        guard case .stored = try archive.push(segment: "\(store)/segment", name: name, recipients: [identity.recipient]) else {
            Issue.record("not stored")
            return
        }
        #expect(try archive.push(segment: "\(store)/segment", name: name, recipients: [identity.recipient]) == .alreadyStored)
        try Data(try SecureRandom.bytes(count: 16)).write(to: URL(fileURLWithPath: "\(store)/other"))
        #expect(throws: ArchiveError.self) { try archive.push(segment: "\(store)/other", name: name, recipients: [identity.recipient]) }
        #expect(throws: ArchiveError.self) { try archive.push(segment: "\(store)/segment", name: "../../etc/passwd", recipients: [identity.recipient]) }
        #expect(try archive.names() == [name])

        #expect(try archive.fetch(name: name, to: "\(store)/fetched", identities: [identity]))
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: "\(store)/fetched"))) == segment)
        #expect(try archive.fetch(name: "000000010000000000000004", to: "\(store)/none", identities: [identity]) == false)
        #expect(throws: (any Error).self) { try archive.fetch(name: name, to: "\(store)/x", identities: [try AgeIdentity.generate()]) }

        let stored = "\(store)/wal/\(name).tar.zst.age"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: stored)))
        bytes[bytes.count - 100] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: stored))
        #expect(throws: (any Error).self) { try archive.fetch(name: name, to: "\(store)/y", identities: [identity]) }
        #expect(!FileManager.default.fileExists(atPath: "\(store)/y"), "nothing written from a damaged segment")
    }
}
