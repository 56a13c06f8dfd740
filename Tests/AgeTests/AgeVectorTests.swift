import Age
import Cryptography
import Foundation
import Testing
import TestSupport

/// The age conformance vectors (../shared/testdata/age, from C2SP CCTV): each file
/// is "key: value" lines, a blank line, then the age file (zlib-compressed when
/// `compressed: zlib`).
struct AgeVector: CustomStringConvertible, Sendable {
    let name: String
    let fields: [String: [String]]
    let file: [UInt8]
    var description: String { name }

    static let directory = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/testdata/age")

    static func all() throws -> [AgeVector] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0 != "README.md" }.sorted().map(load)
    }

    static func load(_ name: String) throws -> AgeVector {
        let data = Array(try Data(contentsOf: directory.appendingPathComponent(name)))
        let split = data.indices.first { data[$0] == 0x0a && $0 + 1 < data.count && data[$0 + 1] == 0x0a }!
        var fields: [String: [String]] = [:]
        for line in String(decoding: data[..<split], as: UTF8.self).split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon]), default: []].append(String(line[line.index(colon, offsetBy: 2)...]))
        }
        var file = Array(data[(split + 2)...])
        if fields["compressed"]?.first == "zlib" { file = try inflate(file) }
        return AgeVector(name: name, fields: fields, file: file)
    }

    /// zlib decompression of a vector's body, by Python's zlib (a test-only need).
    static func inflate(_ bytes: [UInt8]) throws -> [UInt8] {
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("age-vector-\(UUID().uuidString)")
        try Data(bytes).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import sys, zlib; sys.stdout.buffer.write(zlib.decompress(open(sys.argv[1], 'rb').read()))", input.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestEnvironmentError("python3 could not inflate a vector") }
        return Array(output)
    }

    var expect: String { fields["expect"]?.first ?? "" }
    /// Vectors for the post-quantum hybrid recipient type (ML-KEM-768 + X25519).
    var isHybrid: Bool { (fields["identity"] ?? []).contains { $0.hasPrefix("AGE-SECRET-KEY-PQ-") } }
}

@Suite("age conformance vectors")
struct AgeVectorTests {
    static let vectors = (try? AgeVector.all()) ?? []

    @Test("The vectors are all there")
    func present() {
        #expect(Self.vectors.count == 143)
    }

    @Test("Every vector — X25519, hybrid post-quantum (ML-KEM-768 + X25519), scrypt, armor, header, MAC, STREAM: successes give the expected payload hash, failures fail as the vector expects",
        arguments: vectors)
    func vector(_ vector: AgeVector) throws {
        let identities: [any AgeUnwrapping] =
            try AgeIdentities.parseFile((vector.fields["identity"] ?? []).joined(separator: "\n") + "\n# none\n", allowEmpty: true)
            + (vector.fields["passphrase"] ?? []).map { AgePassphrase($0) }
        do {
            let binary = vector.fields["armored"]?.first == "yes" ? try AgeArmor.decode(vector.file) : vector.file
            var decryptor = AgeDecryptor(identities: identities)
            // Fed in uneven pieces, as a stream arrives.
            var plaintext: [UInt8] = []
            var offset = 0
            var step = 1
            while offset < binary.count {
                let end = min(binary.count, offset + step)
                plaintext += try decryptor.update(binary[offset..<end])
                offset = end
                step = step * 3 + 7
            }
            plaintext += try decryptor.finish()
            #expect(vector.expect == "success", "\(vector.name) decrypted but expects \(vector.expect)")
            let digest = SHA256.hash(plaintext).map { String(format: "%02x", $0) }.joined()
            #expect(digest == vector.fields["payload"]?.first, "\(vector.name): payload hash")
        } catch let error as AgeError {
            #expect(error.kind.rawValue == vector.expect, "\(vector.name): \(error) but expects \(vector.expect)")
        }
    }

    @Test("19 of the vectors are hybrid post-quantum ones, run like the others")
    func hybridCount() {
        #expect(Self.vectors.filter(\.isHybrid).count == 19)
    }
}
