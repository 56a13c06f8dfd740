import Age
import Cryptography
import Foundation
import Testing
import TestSupport

@Suite("age keys: Bech32 and X25519 recipients and identities")
struct AgeKeyTests {
    @Test("BIP 173's valid strings decode and re-encode; its invalid ones are refused")
    func bip173() throws {
        for valid in [
            "A12UEL5L", "a12uel5l", "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
            "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
            "11" + String(repeating: "q", count: 82) + "c8247j",
            "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w", "?1ezyfcl",
        ] {
            let (prefix, data) = try Bech32.decode(valid)
            #expect(Bech32.encode(prefix: prefix, data: data, uppercase: valid == valid.uppercased() && valid != valid.lowercased()) == valid)
        }
        for invalid in [
            "pzry9x0s0muk", "1pzry9x0s0muk", "x1b4n0q5v", "li1dgmt3", "A1G7SGD8", "10a06t8", "1qzzfhee", "a12UEL5L", "abc1rzg",
            "de1lg7wt\u{7f}",
        ] {
            #expect(throws: Bech32.DecodingError.self, "\(invalid)") { try Bech32.decode(invalid) }
        }
    }

    @Test("Every identity in the age conformance vectors parses and re-encodes byte for byte")
    func vectorIdentities() throws {
        let directory = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/testdata/age")
        var seen = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name != "README.md" {
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            // The vector's own header: "key: value" lines up to the first blank line.
            let end = data.firstRange(of: Data([0x0a, 0x0a]))?.lowerBound ?? data.startIndex
            let header = String(decoding: data[..<end], as: UTF8.self)
            for line in header.split(separator: "\n") where line.hasPrefix("identity: AGE-SECRET-KEY-1") {
                let text = String(line.dropFirst(10))
                let identity = try AgeIdentity(encoded: text)
                #expect(identity.exposedEncoding() == text)
                #expect(try AgeRecipient(encoded: identity.recipient.encoded) == identity.recipient)
                seen += 1
            }
        }
        #expect(seen >= 50, "the vectors name X25519 identities")
    }

    @Test("Interoperates with age-keygen: its identity gives the recipient it prints, ours gives what age-keygen -y derives")
    func ageKeygen() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("age-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try await runProgram("/usr/bin/age-keygen", ["-o", "\(directory)/theirs.txt"])
        #expect(made.status == 0, "\(made.standardError)")
        let theirs = try String(contentsOfFile: "\(directory)/theirs.txt", encoding: .utf8)
        let printed = try #require(theirs.split(separator: "\n").first { $0.hasPrefix("# public key: ") }).dropFirst(14)
        let parsed = try AgeIdentity.parseFile(theirs)
        #expect(parsed.count == 1 && parsed[0].recipient.encoded == String(printed))

        let ours = try AgeIdentity.generate()
        try ours.exposedFile(created: "2026-11-22T12:00:00Z").write(toFile: "\(directory)/ours.txt", atomically: true, encoding: .utf8)
        let derived = try await runProgram("/usr/bin/age-keygen", ["-y", "\(directory)/ours.txt"])
        #expect(derived.status == 0 && derived.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == ours.recipient.encoded, "\(derived.standardError)")
        #expect(!"\(ours)".contains("AGE-SECRET-KEY"), "the description never shows the secret")
        #expect(ours.recipient.fingerprint.count == 16)
    }

    @Test("Malformed keys are refused without echoing them")
    func refusals() throws {
        let identity = try AgeIdentity.generate()
        let secret = identity.exposedEncoding()
        // The last character changed (a checksum failure): never to itself, which one key in 32 would give.
        let checksumBroken = String(secret.dropLast()) + (secret.hasSuffix("Q") ? "P" : "Q")
        for bad in [secret.lowercased(), identity.recipient.encoded.uppercased(), checksumBroken, "age1" + String(repeating: "q", count: 58), secret.replacingOccurrences(of: "AGE-SECRET-KEY-", with: "AGE-PLUGIN-KEY-")] {
            do {
                _ = try AgeIdentity(encoded: bad)
                Issue.record("accepted an identity: \(bad.prefix(20))…")
            } catch {
                #expect(!"\(error)".contains(String(secret.dropFirst(17).prefix(20))), "\(error)")
            }
        }
        #expect(throws: AgeKeyError.self) { try AgeRecipient(encoded: secret) }
        #expect(throws: AgeKeyError.self) { try AgeIdentity.parseFile("# only a comment\n\n") }
        #expect(throws: AgeKeyError.self) { try AgeIdentity.parseFile("\(secret)\nnot a key\n") }
    }
}

@Suite("age hybrid post-quantum recipients (mlkem768x25519)")
struct AgeHybridTests {
    @Test("A file encrypted to hybrid recipients opens with either identity, at chunk boundaries; identities and recipients re-encode; mixing with X25519 is refused")
    func roundTrip() throws {
        let first = try AgeHybridIdentity.generate()
        let second = try AgeHybridIdentity.generate()
        for size in [0, 1, 65536, 65537, 200_000] {
            let plaintext = try SecureRandom.bytes(count: size)
            let file = try Age.encrypt(plaintext, to: [first.recipient, second.recipient])
            #expect(try Age.decrypt(file, identities: [second]) == plaintext)
            #expect(try Age.decrypt(file, identities: [first]) == plaintext)
            #expect(throws: AgeError.self) { try Age.decrypt(file, identities: [try AgeHybridIdentity.generate(), try AgeIdentity.generate()]) }
        }
        let encoded = first.exposedEncoding()
        #expect(encoded.hasPrefix("AGE-SECRET-KEY-PQ-1"))
        #expect(try AgeHybridIdentity(encoded: encoded).recipient == first.recipient)
        #expect(first.recipient.encoded.hasPrefix("age1pq1"))
        #expect(try AgeHybridRecipient(encoded: first.recipient.encoded) == first.recipient)
        #expect(!"\(first)".contains(encoded))
        #expect(throws: AgeError.self) { try Age.encrypt([1, 2, 3], to: [first.recipient, try AgeIdentity.generate().recipient]) }
        #expect(throws: AgeKeyError.self) { try AgeHybridRecipient(encoded: try AgeIdentity.generate().recipient.encoded) }
        // An identity file may hold both kinds.
        let classic = try AgeIdentity.generate()
        let parsed = try AgeIdentities.parseFile("# created: now\n\(encoded)\n\(classic.exposedEncoding())\n")
        #expect(parsed.count == 2)
        #expect(try Age.decrypt(try Age.encrypt([7], to: [first.recipient]), identities: parsed) == [7])
        #expect(throws: AgeKeyError.self) { try AgeIdentities.parseFile("AGE-SECRET-KEY-PQ-1NOTAKEY\n") }
    }
}
