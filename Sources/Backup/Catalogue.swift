public import Archive
public import Age
import Cryptography
public import Foundation
import Glibc

/// A backup's full manifest: every member with its size and SHA-256, the WAL it
/// needs, and its parent's manifest hash, which makes the catalogue a hash chain.
/// Stored encrypted beside the archive (member hashes of small files would
/// otherwise let anyone on the backup host confirm guesses of their content).
public struct BackupManifest: Codable, Hashable, Sendable {
    /// The format of this manifest.
    public var format = "osmose-backup-manifest/v1"
    /// The backup's id (its UTC start time to the millisecond, `20261122T120000.123Z`; to the second in stores written before 2026-12).
    public var id: String
    /// `full` or `incremental`.
    public var kind: String
    /// When it started and finished (RFC 3339 UTC).
    public var started: String
    public var finished: String
    /// The first WAL segment the base needs, and the last (inclusive).
    public var walStart: String
    public var walEnd: String
    /// The previous backup in the catalogue, and SHA-256 of its manifest (hex).
    public var parent: String?
    public var parentManifestSHA256: String?
    /// The fingerprints of the recipients it is encrypted to.
    public var recipients: [String]
    /// Every member of `data.tar.zst.age`.
    public var members: [ArchiveMember]
    /// Incrementals: the full backup the cluster is restored from.
    public var base: String?
    /// The whole suite tree at this backup (absent in backups made before incrementals).
    public var tree: [SuiteTreeEntry]?
    /// SHA-256 (hex) of `data.tar.zst.age` as written: `verify` compares the stored
    /// file with it without decrypting (absent in backups made before 2026-11-29).
    public var archiveSHA256: String?
    /// Direct copies of the data directory (`backup.data_directory`): every
    /// directory and file of the cluster at this backup, under `pgdata/`, each file
    /// with the backup whose archive holds its content. A restore of an incremental
    /// rebuilds the cluster from this list (absent in `pg_basebackup` backups and in
    /// backups made before incrementals of the cluster).
    public var cluster: [SuiteTreeEntry]?

    /// The other backups whose archives hold content of this one's trees.
    public var references: [String] { Array(Set(((tree ?? []) + (cluster ?? [])).compactMap(\.backup)).subtracting([id])).sorted() }
}

/// What the backup host can read without a key: enough to list, choose and chain
/// backups. `manifestSHA256` ties it to the encrypted manifest.
public struct BackupSummary: Codable, Hashable, Sendable {
    public var id: String
    public var kind: String
    public var started: String
    public var finished: String
    public var walStart: String
    public var walEnd: String
    public var parent: String?
    public var parentManifestSHA256: String?
    public var manifestSHA256: String
    public var recipients: [String]
    /// Bytes of the encrypted archive.
    public var bytes: Int64
    /// Number of members.
    public var memberCount: Int
    /// Incrementals: the full backup the cluster is restored from.
    public var base: String?
    /// Incrementals: the other backups holding files of its tree. Prune keeps them
    /// (and the base) as long as it keeps this one.
    public var references: [String]?
    /// SHA-256 (hex) of `data.tar.zst.age` as written (also in the manifest).
    public var archiveSHA256: String?

    /// The summary of `manifest`, whose JSON hashes to `manifestSHA256`, in an archive of `bytes`.
    public init(manifest: BackupManifest, manifestSHA256: String, bytes: Int64) {
        self.init(
            id: manifest.id, kind: manifest.kind, started: manifest.started, finished: manifest.finished, walStart: manifest.walStart,
            walEnd: manifest.walEnd, parent: manifest.parent, parentManifestSHA256: manifest.parentManifestSHA256, manifestSHA256: manifestSHA256,
            recipients: manifest.recipients, bytes: bytes, memberCount: manifest.members.count)
        base = manifest.base
        references = manifest.references.isEmpty ? nil : manifest.references
        archiveSHA256 = manifest.archiveSHA256
    }

    /// The backups that must stay as long as this one does.
    public var needs: [String] { ((base.map { [$0] } ?? []) + (references ?? [])).uniqued() }

    /// A summary.
    public init(
        id: String, kind: String, started: String, finished: String, walStart: String, walEnd: String, parent: String?, parentManifestSHA256: String?,
        manifestSHA256: String, recipients: [String], bytes: Int64, memberCount: Int
    ) {
        self.id = id
        self.kind = kind
        self.started = started
        self.finished = finished
        self.walStart = walStart
        self.walEnd = walEnd
        self.parent = parent
        self.parentManifestSHA256 = parentManifestSHA256
        self.manifestSHA256 = manifestSHA256
        self.recipients = recipients
        self.bytes = bytes
        self.memberCount = memberCount
    }
}

/// What stays of a pruned backup: the links of the catalogue's hash chain.
public struct PrunedBackup: Codable, Hashable, Sendable {
    public var id: String
    public var kind: String
    public var parent: String?
    public var parentManifestSHA256: String?
    public var manifestSHA256: String
    public var prunedAt: String
    /// The signed note of ``statement`` (absent in tombstones written before signing).
    public var signature: String?

    /// The tombstone of `summary`.
    public init(summary: BackupSummary, prunedAt: String) {
        id = summary.id
        kind = summary.kind
        parent = summary.parent
        parentManifestSHA256 = summary.parentManifestSHA256
        manifestSHA256 = summary.manifestSHA256
        self.prunedAt = prunedAt
    }

    /// What its signature states: the chain links it keeps, and when it was pruned.
    public func statement(signedAt: Date = Date()) throws -> BackupStatement {
        try BackupStatement(
            kind: .pruned, subject: id,
            fields: [
                ("kind", kind), ("parent", parent ?? "-"), ("parent-manifest-sha256", parentManifestSHA256 ?? "-"), ("manifest-sha256", manifestSHA256),
                ("pruned-at", prunedAt), ("signed", SignatureTime.format(signedAt)),
            ])
    }

    /// Whether `statement` states exactly this tombstone.
    func matches(_ statement: BackupStatement) -> Bool {
        statement.value("kind") == kind && statement.value("parent") == parent && statement.value("parent-manifest-sha256") == parentManifestSHA256
            && statement.value("manifest-sha256") == manifestSHA256 && statement.value("pruned-at") == prunedAt
    }
}

/// The backups of a store: `<store>/base/<id>/{data.tar.zst.age, manifest.json.age, summary.json, backup.sig}`.
public struct BackupCatalogue: Sendable {
    /// The store's directory.
    public let store: String

    /// The catalogue of `store`.
    public init(store: String) { self.store = store }

    /// A backup's directory.
    public func directory(_ id: String) -> String { "\(store)/base/\(id)" }

    /// The signature of a backup, beside its files.
    public static let signatureName = "backup.sig"

    /// The statement signed for a backup: its summary's links and WAL range, and the
    /// SHA-256 and size of each of its files as written (`tree.local.json` included:
    /// osmose-backupd checks it before trusting it for the next incremental; copies
    /// and verifiers, which do not have it, skip that line).
    static func statement(
        summary: BackupSummary, manifestPlaintextSHA256: String, files: [(name: String, bytes: Int64, sha256: String)], signedAt: Date = Date()
    ) throws -> BackupStatement {
        try BackupStatement(
            kind: .backup, subject: summary.id,
            fields: [
                ("kind", summary.kind), ("parent", summary.parent ?? "-"), ("base", summary.base ?? "-"), ("wal-start", summary.walStart),
                ("wal-end", summary.walEnd), ("manifest-sha256", manifestPlaintextSHA256), ("recipients", summary.recipients.joined(separator: ",")),
            ] + files.map { BackupStatement.fileField(name: $0.name, bytes: $0.bytes, sha256: $0.sha256) } + [("signed", SignatureTime.format(signedAt))])
    }

    /// Every complete backup (one with a summary), oldest first.
    /// - Throws: ``ArchiveError`` when a summary cannot be read.
    public func summaries() throws -> [BackupSummary] {
        let base = "\(store)/base"
        guard FileManager.default.fileExists(atPath: base) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: base).sorted().compactMap { id in
            let path = "\(base)/\(id)/summary.json"
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            do {
                return try JSONDecoder().decode(BackupSummary.self, from: data)
            } catch {
                throw ArchiveError("\(path) is not a backup summary: \(error)")
            }
        }
    }

    /// `base/pruned.log`: one JSON line per pruned backup.
    public var prunedLogPath: String { "\(store)/base/pruned.log" }

    /// The backups prune removed, oldest first.
    public func pruned() throws -> [PrunedBackup] {
        guard let data = FileManager.default.contents(atPath: prunedLogPath) else { return [] }
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated().map { number, line in
            do {
                return try JSONDecoder().decode(PrunedBackup.self, from: Data(line.utf8))
            } catch {
                throw ArchiveError("\(prunedLogPath), line \(number + 1), is not a pruned-backup record: \(error)")
            }
        }.sorted { $0.id < $1.id }
    }

    /// Appends `records` to the pruned log, each signed, durably.
    func recordPruned(_ records: [PrunedBackup], signer: BackupSigner) throws {
        let existing = FileManager.default.contents(atPath: prunedLogPath).map(Array.init) ?? []
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let lines = try records.map { record in
            var signed = record
            signed.signature = try signer.sign(try record.statement())
            return Array(try encoder.encode(signed)) + [0x0A]
        }.joined()
        try writeDurably(existing + lines, to: prunedLogPath)
    }

    /// The manifest of backup `id`, decrypted, with its hash checked against the summary's.
    public func manifest(_ id: String, identities: [any AgeUnwrapping]) throws -> BackupManifest {
        let path = "\(directory(id))/manifest.json.age"
        guard let file = FileManager.default.contents(atPath: path) else { throw ArchiveError("\(path) is missing") }
        let plaintext = try Age.decrypt(Array(file), identities: identities)
        guard let summary = try summaries().first(where: { $0.id == id }) else { throw ArchiveError("backup \(id) has no summary") }
        guard hexSHA256(plaintext) == summary.manifestSHA256 else {
            throw ArchiveError("the manifest of \(id) does not match the hash its summary records")
        }
        return try JSONDecoder().decode(BackupManifest.self, from: Data(plaintext))
    }
}

extension Array where Element: Hashable {
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}

func hexSHA256(_ bytes: some Collection<UInt8>) -> String { hexDigest(SHA256.hash(bytes)) }

/// WAL segment arithmetic for 16 MiB segments.
public enum WALSegment {
    /// The segment holding `lsn` (`X/Y`) on `timeline`.
    public static func name(timeline: UInt32, lsn: String) -> String? {
        let parts = lsn.split(separator: "/")
        guard parts.count == 2, let high = UInt64(parts[0], radix: 16), let low = UInt64(parts[1], radix: 16) else { return nil }
        let position = high << 32 | low
        return String(format: "%08X%08X%08X", timeline, UInt32(position >> 32), UInt32((position & 0xFFFF_FFFF) >> 24))
    }

    /// The segment after `name` on the same timeline.
    public static func next(_ name: String) -> String? {
        guard name.count == 24, let timeline = UInt32(name.prefix(8), radix: 16), let log = UInt32(name.dropFirst(8).prefix(8), radix: 16),
            let segment = UInt32(name.suffix(8), radix: 16)
        else { return nil }
        return segment == 0xFF ? String(format: "%08X%08X%08X", timeline, log + 1, 0) : String(format: "%08X%08X%08X", timeline, log, segment + 1)
    }
}

extension BackupSummary {
    /// A summary's `started` or `finished` time: to the millisecond, or to the second
    /// (stores written before ids had milliseconds).
    static func date(_ text: String) -> Date? {
        let precise = ISO8601DateFormatter()
        precise.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return precise.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }
}
