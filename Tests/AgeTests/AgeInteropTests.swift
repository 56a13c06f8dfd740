import Age
import Cryptography
import Foundation
import Testing
import TestSupport

@Suite("age interoperability with the Debian age tool")
struct AgeInteropTests {
    static let sizes = [0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 1_000_003]

    func scratch() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("age-interop-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test("Random access: positioned on any plaintext offset, at and around chunk boundaries, in a short or a whole final chunk, the decryptor gives exactly what follows; a negative or impossible offset and a header cut short are refused", arguments: sizes.filter { $0 > 0 })
    func positioned(size: Int) throws {
        let plaintext = try SecureRandom.bytes(count: size)
        let identity = try AgeIdentity.generate()
        let file = try Age.encrypt(plaintext, to: [identity.recipient])
        let offsets = Set([0, 1, 65_535, 65_536, 65_537, 2 * 65_536, size - 1, size / 2].filter { $0 >= 0 && $0 < size })
        for offset in offsets.sorted() {
            var decryptor = AgeDecryptor(identities: [identity])
            let position = try decryptor.position(atPlaintext: Int64(offset), head: Array(file.prefix(64 << 10)), wholeFile: file.count <= 64 << 10)
            var out = try decryptor.update(file[Int(position.fileOffset)...])
            out += try decryptor.finish()
            #expect(Array(out.dropFirst(position.skip)) == Array(plaintext[offset...]), "size \(size), offset \(offset)")
        }
        var negative = AgeDecryptor(identities: [identity])
        #expect(throws: AgeError.self) { try negative.position(atPlaintext: -1, head: file) }
        var huge = AgeDecryptor(identities: [identity])
        #expect(throws: AgeError.self) { try huge.position(atPlaintext: Int64.max, head: file) }
        var cut = AgeDecryptor(identities: [identity])
        #expect(throws: AgeError.self) { try cut.position(atPlaintext: 0, head: Array(file.prefix(40)), wholeFile: true) }
    }

    @Test("age -d decrypts what we encrypt, to one recipient or several, at chunk boundaries and beyond", arguments: sizes)
    func ageDecryptsOurs(size: Int) async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let plaintext = try SecureRandom.bytes(count: size)
        let (first, second) = (try AgeIdentity.generate(), try AgeIdentity.generate())
        try first.exposedFile(created: "now").write(toFile: "\(directory)/first.txt", atomically: true, encoding: .utf8)
        try second.exposedFile(created: "now").write(toFile: "\(directory)/second.txt", atomically: true, encoding: .utf8)
        try Data(try Age.encrypt(plaintext, to: [first.recipient, second.recipient])).write(to: URL(fileURLWithPath: "\(directory)/file.age"))
        for identity in ["first", "second"] {
            let decrypted = try await runProgram("/usr/bin/age", ["-d", "-i", "\(directory)/\(identity).txt", "-o", "\(directory)/out", "\(directory)/file.age"])
            #expect(decrypted.status == 0, "\(decrypted.standardError)")
            // age creates its output at the first byte written: none for an empty payload.
            let output = FileManager.default.contents(atPath: "\(directory)/out").map(Array.init) ?? []
            #expect(output == plaintext)
            try? FileManager.default.removeItem(atPath: "\(directory)/out")
        }
    }

    @Test("We decrypt what age -r and age -a -r encrypt", arguments: sizes)
    func weDecryptAges(size: Int) async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let plaintext = try SecureRandom.bytes(count: size)
        try Data(plaintext).write(to: URL(fileURLWithPath: "\(directory)/plain"))
        let identity = try AgeIdentity.generate()
        for armor in [false, true] {
            let made = try await runProgram(
                "/usr/bin/age", (armor ? ["-a"] : []) + ["-r", identity.recipient.encoded, "-o", "\(directory)/file.age", "\(directory)/plain"])
            #expect(made.status == 0, "\(made.standardError)")
            let file = Array(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/file.age")))
            #expect(try Age.decrypt(file, identities: [identity]) == plaintext)
            try FileManager.default.removeItem(atPath: "\(directory)/file.age")
        }
    }

    @Test("A flipped byte anywhere, a truncation, or an appended byte is refused; the wrong identity is no match")
    func damage() throws {
        let identity = try AgeIdentity.generate()
        let plaintext = try SecureRandom.bytes(count: 150_000)
        let file = try Age.encrypt(plaintext, to: [identity.recipient])
        for position in [5, 40, 120, file.count / 2, file.count - 1] {
            var damaged = file
            damaged[position] ^= 0x01
            #expect(throws: AgeError.self, "flip at \(position)") { try Age.decrypt(damaged, identities: [identity]) }
        }
        for length in [0, 30, 200, 65_536 + 200, file.count - 1] {
            #expect(throws: AgeError.self, "truncated to \(length)") { try Age.decrypt(Array(file.prefix(length)), identities: [identity]) }
        }
        #expect(throws: AgeError.self) { try Age.decrypt(file + [0], identities: [identity]) }
        do {
            _ = try Age.decrypt(file, identities: [try AgeIdentity.generate()])
            Issue.record("decrypted with another identity")
        } catch let error as AgeError {
            #expect(error.kind == .noMatch)
        }
    }
}
