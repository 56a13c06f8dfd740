import Foundation
import Journal
import TestSupport

/// A backup-signing key for the osmose-backupd of a test, as a sysadmin installs it
/// where PostgreSQL's archive_command can read it: the private half in a file
/// (`backup.signing_key_files`), its verifier key in `backup.verifier_keys`.
struct BackupSigningKey {
    /// The key.
    let key: NoteSignerKey
    /// Where its private half is.
    let file: String

    /// A new key written to `<directory>/backup-signing.key`.
    init(in directory: String, name: String = "test.osmose.example/backup") throws {
        key = try NoteSignerKey.generate(name: name)
        file = "\(directory)/backup-signing-\(String(format: "%08x", key.verifierKey.keyID)).key"
        try (key.exposedEncoding() + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o600)
    }

    /// The verifier key's text.
    var verifierKey: String { key.verifierKey.encoded }

    /// The lines under `backup:` that sign with it and trust it.
    var settings: String {
        "  signing_key_files: [\(file)]\n  verifier_keys: [\"\(verifierKey)\"]\n"
    }
}

/// The standard-tools signature check documented in docs/backup.md (the shell
/// script between its `check-signature` markers), written to `<directory>/check-signature.sh`:
/// the tests run the documentation's own commands.
func documentedSignatureCheck(in directory: String) throws -> String {
    let text = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/backup.md"), encoding: .utf8)
    guard let start = text.range(of: "<!-- check-signature:start -->"), let end = text.range(of: "<!-- check-signature:end -->") else {
        throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "docs/backup.md has no check-signature block"])
    }
    let block = String(text[start.upperBound..<end.lowerBound])
    guard let open = block.range(of: "```sh\n"), let close = block.range(of: "```", range: open.upperBound..<block.endIndex) else {
        throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "the check-signature block holds no sh code"])
    }
    let path = "\(directory)/check-signature.sh"
    try String(block[open.upperBound..<close.lowerBound]).write(toFile: path, atomically: true, encoding: .utf8)
    chmod(path, 0o755)
    return path
}
