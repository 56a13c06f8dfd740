import Age
import Archive
import Cryptography
import Foundation
import Testing
import TestSupport

func scratchDirectory(_ label: String) throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-\(label)-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return directory
}

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

@Suite("Encrypted archives: pax tar, zstd, age")
struct EncryptedArchiveTests {
    @Test("Members written come back identical with their SHA-256; age -d | bsdtar lists and extracts the same; a failed writer leaves nothing under the final name")
    func roundTrip() async throws {
        let directory = try scratchDirectory("archive")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let identity = try AgeIdentity.generate()
        try identity.exposedFile(created: "now").write(toFile: "\(directory)/identity.txt", atomically: true, encoding: .utf8)
        let big = try SecureRandom.bytes(count: 3_000_000)
        try Data(big).write(to: URL(fileURLWithPath: "\(directory)/big.bin"))
        let text = Array(String(repeating: "checkpoint osmose journal ", count: 20_000).utf8)

        let path = "\(directory)/backup.tar.zst.age"
        let writer = try EncryptedArchiveWriter(path: path, recipients: [identity.recipient])
        try writer.addDirectory("base")
        let first = try writer.addFile(at: "\(directory)/big.bin", as: "base/big.bin")
        let second = try writer.addBytes(text, as: "base/text.conf")
        let empty = try writer.addBytes([], as: "base/empty")
        #expect(!FileManager.default.fileExists(atPath: path), "not under its final name before finish()")
        try writer.finish()
        #expect(FileManager.default.fileExists(atPath: path) && !FileManager.default.fileExists(atPath: path + ".partial"))
        #expect(first.sha256 == hex(SHA256.hash(big)) && first.size == 3_000_000)
        #expect(second.sha256 == hex(SHA256.hash(text)) && empty.size == 0)
        #expect(writer.bytesWritten < 3_000_000 + Int64(text.count), "the text compresses")

        var seen: [String: String] = [:]
        let reader = try EncryptedArchiveReader(path: path, identities: [identity])
        try reader.forEachMember { name, _, content in
            var hasher = SHA256Hasher()
            try content { hasher.update($0) }
            seen[name] = hex(hasher.finalize())
        }
        #expect(seen["base/big.bin"] == first.sha256 && seen["base/text.conf"] == second.sha256 && seen["base/empty"] == empty.sha256)

        // The disaster path: standard tools only.
        let listed = try await runProgram("/bin/sh", ["-c", "age -d -i '\(directory)/identity.txt' '\(path)' | bsdtar -tvf -"])
        #expect(listed.status == 0 && listed.standardOutput.contains("base/big.bin") && listed.standardOutput.contains("base/text.conf"), "\(listed.standardError)")
        try FileManager.default.createDirectory(atPath: "\(directory)/out", withIntermediateDirectories: true)
        let extracted = try await runProgram("/bin/sh", ["-c", "age -d -i '\(directory)/identity.txt' '\(path)' | bsdtar -xf - -C '\(directory)/out'"])
        #expect(extracted.status == 0, "\(extracted.standardError)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/out/base/big.bin"))) == big)

        // Never overwritten; an abandoned writer leaves no file.
        #expect(throws: ArchiveError.self) { try EncryptedArchiveWriter(path: path, recipients: [identity.recipient]) }
        do {
            let abandoned = try EncryptedArchiveWriter(path: "\(directory)/abandoned.tar.zst.age", recipients: [identity.recipient])
            try abandoned.addBytes(text, as: "x")
        }
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/abandoned.tar.zst.age"))
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/abandoned.tar.zst.age.partial"))
    }

    @Test("A flipped byte or a truncation is reported, never read as a shorter archive")
    func damage() throws {
        let directory = try scratchDirectory("archive-damage")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let identity = try AgeIdentity.generate()
        let path = "\(directory)/a.tar.zst.age"
        let writer = try EncryptedArchiveWriter(path: path, recipients: [identity.recipient])
        try writer.addBytes(try SecureRandom.bytes(count: 400_000), as: "member")
        try writer.finish()
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        for variant in ["flip", "truncate"] {
            var damaged = original
            if variant == "flip" { damaged[damaged.count / 2] ^= 0x20 } else { damaged.removeLast(70_000) }
            try Data(damaged).write(to: URL(fileURLWithPath: "\(directory)/damaged"))
            #expect(throws: (any Error).self, "\(variant)") {
                let reader = try EncryptedArchiveReader(path: "\(directory)/damaged", identities: [identity])
                try reader.forEachMember { _, _, content in try content { _ in } }
            }
            try FileManager.default.removeItem(atPath: "\(directory)/damaged")
        }
    }

    @Test("An archive encrypted to two hybrid post-quantum recipients reads back with either identity, and not with a classic one")
    func postQuantum() throws {
        let directory = try scratchDirectory("pq-archive")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try AgeHybridIdentity.generate()
        let second = try AgeHybridIdentity.generate()
        let content = try SecureRandom.bytes(count: 500_000)
        let path = "\(directory)/pq.tar.zst.age"
        let writer = try EncryptedArchiveWriter(path: path, recipients: [first.recipient, second.recipient])
        let member = try writer.addBytes(content, as: "suite/cold.bin")
        try writer.finish()
        for identity in [first, second] {
            var read: [UInt8] = []
            try EncryptedArchiveReader(path: path, identities: [identity]).forEachMember { name, _, content in
                #expect(name == member.path)
                try content { block in block.withUnsafeBytes { read.append(contentsOf: $0) } }
            }
            #expect(read == content)
        }
        #expect(throws: (any Error).self) {
            try EncryptedArchiveReader(path: path, identities: [try AgeIdentity.generate()]).forEachMember { _, _, _ in }
        }
        #expect(throws: (any Error).self, "classic and post-quantum are not mixed") {
            _ = try EncryptedArchiveWriter(path: "\(directory)/mixed.tar.zst.age", recipients: [first.recipient, try AgeIdentity.generate().recipient])
        }
    }
}
