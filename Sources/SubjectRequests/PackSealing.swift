public import Age
import Archive
import Cryptography
import Foundation

/// Whom a pack or an evidence file is sealed for: a passphrase (age's scrypt
/// recipient, given to the requester by another channel) or the requester's age key.
public enum SealTarget: Sendable, Hashable, Codable {
    /// An `age1…` X25519 recipient.
    case recipient(String)
    /// A passphrase; never stored, never queued.
    case passphrase(String)

    /// What the register records about it: the recipient itself, or `passphrase`.
    public var recorded: String {
        switch self {
        case .recipient(let key): key
        case .passphrase: "passphrase (scrypt)"
        }
    }

    /// The age wrapper.
    /// - Throws: ``SubjectRequestError`` `.invalidArgument` for a malformed recipient or a weak passphrase.
    func wrapper() throws -> any AgeWrapping {
        switch self {
        case .recipient(let key):
            do {
                return try AgeRecipient(encoded: key)
            } catch {
                throw SubjectRequestError(.invalidArgument, "\(key.prefix(12))… is not an age X25519 recipient (age1 followed by 58 characters)")
            }
        case .passphrase(let passphrase):
            guard passphrase.unicodeScalars.count >= 12 else {
                throw SubjectRequestError(.invalidArgument, "a passphrase protecting a health record has at least 12 characters")
            }
            return AgePassphrase(passphrase)
        }
    }
}

/// A sealed file written: where, its digest, and what it holds.
public struct SealedFile: Sendable, Hashable, Codable {
    /// Its path.
    public let path: String
    /// `sha256:` and the hex SHA-256 of the encrypted file.
    public let sha256: String
    /// Its members, with their digests.
    public let members: [String: String]
}

/// Writes files as one age-encrypted archive (pax tar, zstd, age): after
/// `age -d`, `tar --zstd -x` (or `bsdtar -x`) extracts them. Written under a
/// temporary name and renamed once complete; never in clear on disk.
public enum SealedArchive {
    /// Writes `members` (name → bytes, in order) to `path`, which must not exist.
    /// - Throws: ``SubjectRequestError`` `.invalidArgument` when the file exists or cannot be written.
    public static func write(_ members: [(name: String, bytes: [UInt8])], to path: String, for target: SealTarget) throws -> SealedFile {
        let wrapper = try target.wrapper()
        do {
            let writer = try EncryptedArchiveWriter(path: path, wrappingTo: [wrapper])
            var digests: [String: String] = [:]
            var directories: Set<String> = []
            for member in members {
                let parent = (member.name as NSString).deletingLastPathComponent
                if !parent.isEmpty, directories.insert(parent).inserted { try writer.addDirectory(parent, mode: 0o750) }
                try writer.addBytes(member.bytes, as: member.name, mode: 0o640)
                digests[member.name] = digest(member.bytes)
            }
            try writer.finish()
            guard let sum = writer.fileSHA256 else { throw SubjectRequestError(.internalError, "the sealed file's digest is missing") }
            return SealedFile(path: path, sha256: "sha256:" + sum, members: digests)
        } catch let error as ArchiveError {
            throw SubjectRequestError(.invalidArgument, "cannot write \(path): \(error.message)")
        }
    }

    /// The members of a sealed file, decrypted with `identities` (tests, and the DPO checking a pack before delivery).
    public static func read(_ path: String, identities: [any AgeUnwrapping]) throws -> [String: [UInt8]] {
        let reader = try EncryptedArchiveReader(path: path, identities: identities)
        var members: [String: [UInt8]] = [:]
        try reader.forEachMember { name, _, content in
            var bytes: [UInt8] = []
            try content { span in span.withUnsafeBytes { bytes.append(contentsOf: $0) } }
            members[name] = bytes
        }
        return members
    }
}

/// The files of a sealed access pack.
public enum AccessPackFiles {
    /// The archive's members: the HTML, JSON and FHIR forms, the journal's proofs in
    /// the layout C2SP tools read, and a French note saying how to open and check it.
    public static func members(of pack: AccessPack, json: [UInt8], establishment: String) throws -> [(name: String, bytes: [UInt8])] {
        var members: [(name: String, bytes: [UInt8])] = [
            ("LISEZMOI.txt", Array(readme(pack).utf8)),
            ("dossier.html", Array(AccessPackHTML.render(pack, establishment: establishment).utf8)),
            ("dossier.json", json),
            ("dossier.fhir.json", try AccessPackFHIR.bundle(pack)),
            ("journal/checkpoint", Array(pack.journal.checkpoint.utf8)),
            ("journal/proofs", Array(pack.consultations.map(\.proof).joined(separator: "--\n").utf8)),
            ("journal/leaf-hashes", Array(pack.consultations.map { "\($0.sequence) \($0.leafHash)\n" }.joined().utf8)),
        ]
        let entries = pack.consultations.compactMap { $0.entry.flatMap { Data(base64Encoded: $0) }.map(Array.init) }
        if pack.staffNames, entries.count == pack.consultations.count {
            var bundle: [UInt8] = []
            for entry in entries {
                bundle.append(UInt8(entry.count >> 8))
                bundle.append(UInt8(entry.count & 0xFF))
                bundle.append(contentsOf: entry)
            }
            members.append(("journal/entries", bundle))
        }
        return members
    }

    static func readme(_ pack: AccessPack) -> String {
        """
        Communication de votre dossier — demande n° \(pack.request.number)

        dossier.html       le document à lire ou imprimer
        dossier.json       les mêmes informations, dans un format lisible par un programme
        dossier.fhir.json  les mêmes informations au format FHIR R4 (norme des échanges de santé)
        journal/           les preuves que chaque accès listé figure dans le journal signé :
          checkpoint       l'état signé du journal (n° \(pack.journal.checkpointID), \(pack.journal.treeSize) entrées)
          proofs           une preuve d'inclusion c2sp.org/tlog-proof@v1 par accès, séparées par une ligne « -- »
          leaf-hashes      pour chaque accès : son numéro dans le journal et l'empreinte de son entrée
        \(pack.staffNames ? "  entries          les entrées elles-mêmes (paquet d'entrées C2SP)\n" : "")
        Ce fichier a été déchiffré avec la phrase de passe ou la clé qui vous a été communiquée
        séparément (outil « age », https://age-encryption.org). Le contenu est un dossier tar compressé :
          age -d dossier.age > dossier.tar.zst && tar --zstd -xf dossier.tar.zst

        Vérification du journal : la clé publique du journal « \(pack.journal.origin) » est publiée par
        l'établissement ; tout outil conforme aux spécifications C2SP (tlog-checkpoint, tlog-proof) vérifie
        la signature du point de contrôle et chaque preuve contre l'empreinte de l'entrée correspondante.

        """
    }
}
