import Foundation
import Journal
import Testing

@Suite("C2SP signed notes (Ed25519) against the Go sumdb/note vector")
struct SignedNoteTests {
    static let verifierKey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    static let signerKey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    static let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    static let note = text + "\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"

    @Test("Keys parse, re-encode byte for byte, and our signature equals the published note")
    func vector() throws {
        let verifier = try NoteVerifierKey(encoded: Self.verifierKey)
        #expect(verifier.name == "PeterNeumann")
        #expect(verifier.keyID == 0xc74f20a3)
        #expect(verifier.encoded == Self.verifierKey)
        let signer = try NoteSignerKey(encoded: Self.signerKey)
        #expect(signer.verifierKey == verifier)
        #expect(signer.exposedEncoding() == Self.signerKey)
        #expect(!String(describing: signer).contains("AYEKFALV"))
        #expect(try SignedNote.sign(Self.text, with: [signer]) == Self.note)
        let opened = try SignedNote.open(Self.note, verifiers: [verifier])
        #expect(opened.text == Self.text)
        #expect(opened.signedBy == [verifier])
    }

    @Test("Malformed keys and notes, forged or unknown signatures are refused")
    func refusals() throws {
        for bad in [
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3",
            "PeterNeumann+c74f20a3+!!!!",
        ] {
            #expect(throws: NoteError.self, "\(bad)") { try NoteVerifierKey(encoded: bad) }
        }
        let verifier = try NoteVerifierKey(encoded: Self.verifierKey)
        let other = try NoteSignerKey.generate(name: "journal.chu-exemple.fr")
        let forged = Self.note.replacingOccurrences(of: "problem is.", with: "problem was.")
        #expect(throws: NoteError.self) { try SignedNote.open(forged, verifiers: [verifier]) }
        #expect(throws: NoteError.self) { try SignedNote.open(Self.note, verifiers: [other.verifierKey]) }
        #expect(throws: NoteError.self) { try SignedNote.open(Self.text, verifiers: [verifier]) }
        #expect(throws: NoteError.self) { try SignedNote.sign("no final newline", with: [other]) }
        #expect(throws: NoteError.self) { try SignedNote.sign("a\n\nb\n", with: [other]) }
        // A second, unknown signature is ignored; the known one still verifies.
        let cosigned = try SignedNote.sign(Self.text, with: [try NoteSignerKey(encoded: Self.signerKey), other])
        #expect(try SignedNote.open(cosigned, verifiers: [verifier]).signedBy == [verifier])
        #expect(try SignedNote.open(cosigned, verifiers: [verifier, other.verifierKey]).signedBy.count == 2)
    }
}

@Suite("C2SP tlog-checkpoint")
struct CheckpointTests {
    @Test("A checkpoint of the reference tree signs, opens and round-trips; a wrong origin or key is refused")
    func checkpoint() throws {
        let key = try NoteSignerKey.generate(name: "journal.chu-exemple.fr")
        let root = MerkleTree.root(ReferenceTree.leaves[...])
        let checkpoint = Checkpoint(origin: "journal.chu-exemple.fr", size: 8, rootHash: root)
        #expect(checkpoint.text == "journal.chu-exemple.fr\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n")
        let note = try checkpoint.signed(by: [key])
        #expect(try Checkpoint.open(note, logKey: key.verifierKey) == checkpoint)
        #expect(throws: NoteError.self) { try Checkpoint.open(note, logKey: try NoteSignerKey.generate(name: "journal.chu-exemple.fr").verifierKey) }
        #expect(throws: NoteError.self) { try Checkpoint(origin: "other.origin", size: 8, rootHash: root).signed(by: [key]) }
        for bad in ["journal\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "journal\n8\nshort\n", "journal\n8\n", "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"] {
            #expect(throws: NoteError.self, "\(bad)") { try Checkpoint(text: bad) }
        }
        let withExtension = try Checkpoint(text: checkpoint.text + "extension line\n")
        #expect(withExtension.extensions == ["extension line"])
    }

    @Test("Around a rollover: a checkpoint signed by two log keys opens with either, reports both, and fails when one known signature is forged")
    func rolloverSignatures() throws {
        let old = try NoteSignerKey.generate(name: "journal.chu-exemple.fr")
        let new = try NoteSignerKey.generate(name: "journal.chu-exemple.fr")
        let stranger = try NoteSignerKey.generate(name: "journal.chu-exemple.fr")
        let checkpoint = Checkpoint(origin: "journal.chu-exemple.fr", size: 3, rootHash: [UInt8](repeating: 7, count: 32), extensions: ["osmose-time x"])
        let note = try checkpoint.signed(by: [new, old])
        #expect(try Checkpoint.open(note, logKeys: [old.verifierKey]).signedBy == [old.verifierKey])
        #expect(try Checkpoint.open(note, logKeys: [new.verifierKey]).checkpoint == checkpoint)
        #expect(Set(try Checkpoint.open(note, logKeys: [old.verifierKey, new.verifierKey, stranger.verifierKey]).signedBy) == [old.verifierKey, new.verifierKey])
        #expect(throws: NoteError.self) { try Checkpoint.open(note, logKeys: [stranger.verifierKey]) }
        // The old key's line replaced by a signature of other text: refused, although the new key's line is good.
        let otherText = try Checkpoint(origin: "journal.chu-exemple.fr", size: 4, rootHash: checkpoint.rootHash).signed(by: [old])
        let forgedLine = otherText.split(separator: "\n").last!
        let lines = note.split(separator: "\n", omittingEmptySubsequences: false)
        let forged = lines.map { line in line.hasPrefix("\u{2014}") && line != lines.first(where: { $0.hasPrefix("\u{2014}") }) ? forgedLine : line }
            .joined(separator: "\n")
        #expect(throws: NoteError.self) { try Checkpoint.open(forged, logKeys: [old.verifierKey, new.verifierKey]) }
        #expect(try Checkpoint.open(forged, logKeys: [new.verifierKey]).signedBy == [new.verifierKey])
    }
}
