import Age
import Backup
import Cryptography
import Foundation
import Testing
import TestSupport

@Suite("Backup copy locations")
struct CopiesTests {
    @Test("A copy mirrors the store, each file read back identical; a damaged copy is rewritten, a pruned file removed, an unusable location reported")
    func mirror() throws {
        let store = try scratchDirectory("copy-store")
        let copy = try scratchDirectory("copy-remote")
        defer {
            try? FileManager.default.removeItem(atPath: store)
            try? FileManager.default.removeItem(atPath: copy)
        }
        let identity = try AgeIdentity.generate()
        try Data(try SecureRandom.bytes(count: 200_000)).write(to: URL(fileURLWithPath: "\(store)/segment"))
        _ = try WALArchive(store: store).push(segment: "\(store)/segment", name: "000000010000000000000001", recipients: [identity.recipient])
        _ = try WALArchive(store: store).push(segment: "\(store)/segment", name: "000000010000000000000002", recipients: [identity.recipient])
        try FileManager.default.removeItem(atPath: "\(store)/segment")

        let copies = BackupCopies(store: store)
        let first = copies.mirror(to: copy)
        #expect(first.failures.isEmpty && first.copied.count == 5, "\(first)")  // 2 archives, 2 digests, the push log
        let stored = "wal/000000010000000000000001.tar.zst.age"
        #expect(FileManager.default.contents(atPath: "\(copy)/\(stored)") == FileManager.default.contents(atPath: "\(store)/\(stored)"))
        let again = copies.mirror(to: copy)
        #expect(again.copied.isEmpty && again.unchanged == 5)

        var damaged = Array(FileManager.default.contents(atPath: "\(copy)/\(stored)")!)
        damaged[100] ^= 1
        try Data(damaged).write(to: URL(fileURLWithPath: "\(copy)/\(stored)"))
        #expect(copies.mirror(to: copy).copied == [stored])

        try FileManager.default.removeItem(atPath: "\(store)/wal/000000010000000000000002.tar.zst.age")
        #expect(copies.mirror(to: copy).removed == ["wal/000000010000000000000002.tar.zst.age"])

        FileManager.default.createFile(atPath: "\(copy)/not-a-directory", contents: Data())
        let broken = copies.mirror(to: "\(copy)/not-a-directory")
        #expect(!broken.failures.isEmpty && broken.copied.isEmpty)
    }
}
