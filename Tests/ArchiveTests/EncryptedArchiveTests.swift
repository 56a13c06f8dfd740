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

    @Test("Copies written with the file are byte for byte the file; an existing copy is refused before anything is written; an abandoned writer leaves no copy")
    func copies() throws {
        let directory = try scratchDirectory("archive-copies")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for sub in ["a", "b", "c"] { try FileManager.default.createDirectory(atPath: "\(directory)/\(sub)", withIntermediateDirectories: true) }
        let identity = try AgeIdentity.generate()
        let content = try SecureRandom.bytes(count: 2_500_000)
        let writer = try EncryptedArchiveWriter(path: "\(directory)/a/x.age", recipients: [identity.recipient], copies: ["\(directory)/b/x.age", "\(directory)/c/x.age"])
        try writer.addBytes(content, as: "member")
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/b/x.age") && FileManager.default.fileExists(atPath: "\(directory)/b/x.age.partial"))
        try writer.finish()
        let digests = try ["a", "b", "c"].map { try FileBlocks.sha256(ofFile: "\(directory)/\($0)/x.age") }
        #expect(digests.allSatisfy { $0.sha256 == writer.fileSHA256 && $0.size == writer.bytesWritten })
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/b") == ["x.age"])

        // A copy that exists: refused, and neither the file nor any temporary is left.
        let refused = #expect(throws: ArchiveError.self) {
            try EncryptedArchiveWriter(path: "\(directory)/a/y.age", recipients: [identity.recipient], copies: ["\(directory)/c/z.age", "\(directory)/b/x.age"])
        }
        #expect(refused?.message.contains("b/x.age exists") == true, "\(String(describing: refused))")
        // One file named twice (a directory with and without its slash): refused, nothing removed.
        let twice = #expect(throws: ArchiveError.self) {
            try EncryptedArchiveWriter(path: "\(directory)/a/v.age", recipients: [identity.recipient], copies: ["\(directory)/b/v.age", "\(directory)/b//v.age"])
        }
        #expect(twice?.message.contains("are the same file") == true, "\(String(describing: twice))")
        for sub in ["a", "b", "c"] { #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/\(sub)") == ["x.age"], "\(sub)") }
        do {
            let abandoned = try EncryptedArchiveWriter(path: "\(directory)/a/w.age", recipients: [identity.recipient], copies: ["\(directory)/b/w.age"])
            try abandoned.addBytes(content, as: "member")
        }
        for sub in ["a", "b"] { #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/\(sub)") == ["x.age"], "\(sub)") }
    }

    @Test("Large members and runs of small ones start zstd frames; a reader started at any member's frame reads from that member on, checks every chunk it reads, and stops when told; bsdtar still reads the file whole")
    func frames() async throws {
        // Base backups compress on zstd's worker threads: frames must end in the same places.
        for threads in [1, 2] { try await frames(threads: threads) }
    }

    func frames(threads: Int) async throws {
        let directory = try scratchDirectory("archive-frames")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let identity = try AgeIdentity.generate()
        try identity.exposedFile(created: "now").write(toFile: "\(directory)/identity.txt", atomically: true, encoding: .utf8)
        var generator = TestSeed.generator(test: "archive frames")
        let path = "\(directory)/frames.tar.zst.age"
        let writer = try EncryptedArchiveWriter(path: path, recipients: [identity.recipient], threads: threads)
        var contents: [String: [UInt8]] = [:]
        var written: [ArchiveMember] = []
        // 1,200 small members of 8 KiB (9.4 MiB: more than one frame), then large ones
        // (random, so that the compressed offsets run past many age chunks), then small again.
        func add(_ name: String, _ bytes: [UInt8]) throws {
            contents[name] = bytes
            written.append(try writer.addBytes(bytes, as: name))
        }
        for index in 0..<1_200 { try add("small/\(index)", Array(repeating: UInt8(index % 251), count: 8_192)) }
        for index in 0..<3 { try add("large/\(index)", generator.bytes(count: 1_500_000 + index)) }
        for index in 0..<10 { try add("tail/\(index)", Array("entry \(index)\n".utf8)) }
        try writer.finish()

        let frames = written.map { $0.frame ?? -1 }
        #expect(!frames.contains(-1), "every member records its frame")
        #expect(frames == frames.sorted(), "frames only move forward")
        #expect(written[0].frame == 0)
        #expect(Set(frames[0..<1_200]).count >= 2, "small members share frames of about 8 MiB of input, not one for the whole run")
        #expect(Set(frames[0..<1_200]).count <= 3)
        for index in 1_200..<1_203 { #expect(frames[index] > frames[index - 1], "a large member starts a frame of its own") }
        #expect(frames[1_203] > frames[1_202] && Set(frames[1_203...]).count == 1, "the small members after a large one share the next frame")

        // From each distinct frame (and from the frame of a member in the middle of one),
        // the reader's first file is the frame's first member, and what follows is intact.
        for start in [0, 600, 1_199, 1_200, 1_201, 1_202, 1_203, 1_210] {
            let frame = written[start].frame!
            let first = written.firstIndex { $0.frame == frame }!
            var names: [String] = []
            let reader = try EncryptedArchiveReader(path: path, identities: [identity], startingAt: frame)
            try reader.readEntries { entry, content in
                var bytes: [UInt8] = []
                try content { block in block.withUnsafeBytes { bytes += $0 } }
                #expect(bytes == contents[entry.path], "\(entry.path) read from frame \(frame)")
                names.append(entry.path)
                return entry.path != written[start].path
            }
            #expect(names == written[first...start].map(\.path), "from frame \(frame): members \(first) to \(start), and no further")
        }
        // Read to the end from the last frame: the final chunk authenticates.
        var tail = 0
        try EncryptedArchiveReader(path: path, identities: [identity], startingAt: written.last!.frame!).forEachMember { _, _, _ in tail += 1 }
        #expect(tail == 10)

        // An offset that is not a frame's start is refused, never read as other members.
        #expect(throws: ArchiveError.self) {
            try EncryptedArchiveReader(path: path, identities: [identity], startingAt: written[1_201].frame! + 1).forEachMember { _, _, _ in }
        }
        // A flipped byte inside the part a frame reader reads is caught by age.
        var damaged = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        damaged[damaged.count - 5_000] ^= 0x40
        try Data(damaged).write(to: URL(fileURLWithPath: "\(directory)/damaged.age"))
        #expect(throws: (any Error).self) {
            try EncryptedArchiveReader(path: "\(directory)/damaged.age", identities: [identity], startingAt: written[1_202].frame!).forEachMember { _, _, _ in }
        }

        // Standard tools read the frames as one stream.
        let listed = try await runProgram("/bin/sh", ["-c", "age -d -i '\(directory)/identity.txt' '\(path)' | bsdtar -tf - | wc -l"])
        #expect(listed.status == 0 && listed.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "\(written.count)", "\(listed.standardError)")
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

/// An archive read back while it is written (``GrowingFile``): the read-back sees
/// exactly the file, waits for the writer, and stops it when it gives up.
@Suite("Encrypted archives read back as they grow")
struct GrowingArchiveTests {
    /// What the writer thread did: the file's SHA-256 and size, or its error.
    final class Written: @unchecked Sendable {
        // @unchecked: written by the writer thread before `done` is signalled, read after.
        var sha256: String?
        var bytes: Int64 = 0
        var error: String?
        let done = DispatchSemaphore(value: 0)
        /// Waits for the writer thread to end.
        func wait() -> Written {
            done.wait()
            return self
        }
    }

    /// Writes `members` into `path` on a thread of its own (never the cooperative
    /// pool, which the reader's waits would starve), reading along `growing`; between
    /// members, waits `pause` so the reader catches up and has to wait; stops after
    /// member `gate.index` until `gate.semaphore` is signalled.
    func writeInBackground(
        _ path: String, to recipient: AgeRecipient, growing: GrowingFile, members: [[UInt8]], pause: useconds_t = 2_000, finish: Bool = true,
        gate: (index: Int, semaphore: DispatchSemaphore)? = nil
    ) -> Written {
        let written = Written()
        let thread = Thread {
            do {
                let writer = try EncryptedArchiveWriter(path: path, recipients: [recipient], readAlong: growing)
                for (index, member) in members.enumerated() {
                    try writer.addBytes(member, as: "member-\(index)")
                    if let gate, gate.index == index { gate.semaphore.wait() }
                    usleep(pause)
                }
                if finish { try writer.finish() }
                (written.sha256, written.bytes) = (writer.fileSHA256, writer.bytesWritten)
            } catch {
                written.error = "\(error)"
            }
            written.done.signal()
        }
        thread.start()
        return written
    }

    @Test("The reader gets every member and every byte of the file, hashed as the writer hashed it, though it overtakes the writer many times")
    func readAlong() throws {
        let directory = try scratchDirectory("growing")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let identity = try AgeIdentity.generate()
        // Random members (incompressible: the file grows with each) and a compressible one.
        let members = try (0..<40).map { _ in try SecureRandom.bytes(count: 200_000) } + [Array(repeating: 0x61, count: 1_000_000)]
        let path = "\(directory)/a.tar.zst.age"
        let growing = GrowingFile(path: path)
        let writing = writeInBackground(path, to: identity.recipient, growing: growing, members: members)
        let reader = try EncryptedArchiveReader(growing: growing, identities: [identity])
        var seen: [String] = []
        try reader.forEachMember { name, _, content in
            var hasher = SHA256Hasher()
            try content { hasher.update($0) }
            seen.append("\(name) \(hex(hasher.finalize()))")
        }
        try reader.readToEnd()
        let written = writing.wait()
        #expect(written.error == nil, "\(written.error ?? "")")
        #expect(seen == members.enumerated().map { "member-\($0.offset) \(hex(SHA256.hash($0.element)))" })
        #expect(growing.readerWaits > 0, "the reader caught up with the writer and waited for it")
        #expect(reader.fileSHA256 != nil && reader.fileSHA256 == written.sha256, "the bytes read back hash as the bytes written")
        let stored = try FileBlocks.sha256(ofFile: path)
        #expect(reader.bytesRead == written.bytes && written.bytes == stored.size)
        #expect(stored.sha256 == written.sha256)
    }

    @Test("A writer that stops without finishing fails the reader, which never takes the partial file for a whole archive")
    func writerFails() throws {
        let directory = try scratchDirectory("growing-fail")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let identity = try AgeIdentity.generate()
        let members = try (0..<10).map { _ in try SecureRandom.bytes(count: 300_000) }
        let path = "\(directory)/a.tar.zst.age"
        let growing = GrowingFile(path: path)
        let writing = writeInBackground(path, to: identity.recipient, growing: growing, members: members, finish: false)
        let reader = try EncryptedArchiveReader(growing: growing, identities: [identity])
        var error: (any Error)?
        do {
            try reader.forEachMember { _, _, content in try content { _ in } }
            try reader.readToEnd()
        } catch let caught {
            error = caught
        }
        _ = writing.wait()
        #expect(error != nil && "\(error!)".contains("was not completed"), "\(String(describing: error))")
        #expect(reader.fileSHA256 == nil)
        #expect(!FileManager.default.fileExists(atPath: path) && !FileManager.default.fileExists(atPath: path + ".partial"))
    }

    @Test("A reader that gives up stops the writer at its next write; a writer that fails before creating the file releases the reader itself")
    func abandon() throws {
        let directory = try scratchDirectory("growing-abandon")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let identity = try AgeIdentity.generate()
        let members = try (0..<50).map { _ in try SecureRandom.bytes(count: 200_000) }
        let path = "\(directory)/a.tar.zst.age"
        let growing = GrowingFile(path: path)
        // The writer waits after its tenth member until the reader has given up.
        let gate = DispatchSemaphore(value: 0)
        let writing = writeInBackground(path, to: identity.recipient, growing: growing, members: members, gate: (9, gate))
        let reader = try EncryptedArchiveReader(growing: growing, identities: [identity])
        var read = 0
        struct Enough: Error {}
        do {
            try reader.forEachMember { _, _, content in
                try content { _ in }
                read += 1
                if read == 3 { throw Enough() }
            }
        } catch is Enough {}
        growing.abandon()
        gate.signal()
        let written = writing.wait()
        #expect(written.error?.contains("the read-back stopped") == true, "\(written.error ?? "finished")")
        #expect(!FileManager.default.fileExists(atPath: path) && !FileManager.default.fileExists(atPath: path + ".partial"))

        // The file is never created (it exists already): the reader is told, not left waiting.
        let blocked = "\(directory)/exists.age"
        #expect(FileManager.default.createFile(atPath: blocked, contents: Data("x".utf8)))
        let never = GrowingFile(path: blocked)
        let failing = Written()
        Thread {
            do {
                _ = try EncryptedArchiveWriter(path: blocked, recipients: [identity.recipient], readAlong: never)
            } catch {
                failing.error = "\(error)"
            }
            failing.done.signal()
        }.start()
        #expect(throws: ArchiveError.self) { try EncryptedArchiveReader(growing: never, identities: [identity]) }
        #expect(failing.wait().error?.contains("exists") == true)
    }
}
