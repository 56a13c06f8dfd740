public import Cryptography
public import Foundation

/// Secrets systemd hands the service (`LoadCredential=`, `LoadCredentialEncrypted=`,
/// `SetCredential=`) as files in `$CREDENTIALS_DIRECTORY`.
public struct Credentials: Sendable {
    /// The directory, or nil when the unit passes no credentials.
    public let directory: String?

    /// Reads `CREDENTIALS_DIRECTORY` from `environment`.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        directory = environment["CREDENTIALS_DIRECTORY"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Loads the credential `name` into wiped memory.
    /// - Throws: ``SystemdError/Code/credentialUnavailable`` naming the credential and
    ///   the fix, when there is no credentials directory, the name is not a plain
    ///   file name, or the file is missing or unreadable.
    public func load(_ name: String) throws -> SecretBytes {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/") else {
            throw SystemdError(.credentialUnavailable, "credential name \"\(name)\" is not a plain file name")
        }
        guard let directory else {
            throw SystemdError(
                .credentialUnavailable,
                "credential \(name) needed but CREDENTIALS_DIRECTORY is not set: add LoadCredential=\(name):… to the unit")
        }
        do {
            return try SecretBytes.contentsOfFile("\(directory)/\(name)")
        } catch let error as CryptoError {
            throw SystemdError(.credentialUnavailable, "credential \(name): \(error.message)")
        }
    }

    /// The names of the credentials passed, sorted (names only, never contents).
    public func names() -> [String] {
        guard let directory, let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return entries.sorted()
    }

    /// The path of credential `name`'s file when the unit passes it, else nil: for
    /// a library that reads the secret itself (the keyring's master key) and need
    /// not know where systemd puts credentials.
    public func path(of name: String) -> String? {
        guard let directory, names().contains(name) else { return nil }
        return "\(directory)/\(name)"
    }
}
