import Cryptography
import Foundation
public import Settings

/// The retention policy as a daemon or command loads it: validated, checked
/// against the backup policy, with the digest plans and certificates record.
public struct LoadedRetentionPolicy: Sendable, Hashable {
    /// The policy.
    public let policy: RetentionPolicy
    /// SHA-256 (hex) of the file's bytes.
    public let sha256: String

    /// Reads `retention`, and `backup` to check that backups are pruned within the
    /// retention policy's margin of every purge.
    /// - Throws: ``Settings/ConfigurationError`` naming the file, line and reason.
    public static func load(retention: String, backup: String) throws -> LoadedRetentionPolicy {
        guard let bytes = FileManager.default.contents(atPath: retention) else {
            throw ConfigurationError(.unreadable, file: retention, line: nil, column: nil, reason: "cannot read the file (missing, or no permission)")
        }
        let document = try SettingsDocument(contentsOf: retention)
        let policy = try RetentionPolicy.parse(document)
        try RetentionPolicy.checkBackups(retention: document, backup: try SettingsDocument(contentsOf: backup))
        return LoadedRetentionPolicy(policy: policy, sha256: SHA256.hash(Array(bytes)).map { String(format: "%02x", $0) }.joined())
    }

    /// The policy files `configuration` names.
    public static func load(_ configuration: SuiteConfiguration) throws -> LoadedRetentionPolicy {
        try load(retention: configuration.retentionPolicyPath, backup: configuration.backupPolicyPath)
    }
}
