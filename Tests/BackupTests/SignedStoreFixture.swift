import Age
import Archive
import Backup
import Foundation
import Journal
import TestSupport

/// A backup store written by the real code paths, signed: WAL files pushed by
/// `WALArchive.push`, full backups of a small data directory by `BaseBackup` (its
/// direct copy, with a stand-in for pg_backup_start/pg_backup_stop that reports a
/// label), incrementals of a suite tree. Real age, libarchive, zstd and Ed25519.
final class SignedStore {
    /// The scratch directory holding everything (removed by ``with(_:_:)``).
    let root: String
    /// The identity the backups are encrypted to.
    let identity: AgeIdentity
    /// The suite's backup-signing key.
    let key: NoteSignerKey
    /// Segment contents and suite files.
    var generator: SeededGenerator
    /// The number of the next WAL segment to push.
    private(set) var nextSegment = 1

    var store: String { root + "/store" }
    var signer: BackupSigner { try! BackupSigner(keys: [key]) }
    /// What a verifier configured with the suite's key trusts.
    var trust: BackupTrust { BackupTrust(keys: [BackupTrust.Key(verifier: key.verifierKey)]) }
    var wal: WALArchive { WALArchive(store: store) }
    var catalogue: BackupCatalogue { BackupCatalogue(store: store) }

    private init(label: String, test: String) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-\(label)-\(UUID().uuidString.prefix(8))").path
        identity = try AgeIdentity.generate()
        key = try NoteSignerKey.generate(name: "test.osmose.example/backup")
        generator = TestSeed.generator(test: test)
        for directory in ["store", "pgdata/base/1", "pgdata/global", "pgdata/pg_wal", "suite", "segments", "witness"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(directory)", withIntermediateDirectories: true)
        }
        try Data("15\n".utf8).write(to: URL(fileURLWithPath: "\(root)/pgdata/PG_VERSION"))
        try Data(generator.bytes(count: 150_000)).write(to: URL(fileURLWithPath: "\(root)/pgdata/base/1/16384"))
        try Data(generator.bytes(count: 8192)).write(to: URL(fileURLWithPath: "\(root)/pgdata/global/pg_control"))
        try Data("backup:\n  store: x\n".utf8).write(to: URL(fileURLWithPath: "\(root)/suite/osmose.yaml"))
    }

    /// Runs `body` with a new store, removed on every path.
    static func with<Result>(_ label: String, test: String = #function, _ body: (SignedStore) async throws -> Result) async throws -> Result {
        try await withResource(try SignedStore(label: label, test: test), release: { try? FileManager.default.removeItem(atPath: $0.root) }, body)
    }

    /// The name of WAL segment `number` on timeline 1.
    static func segmentName(_ number: Int) -> String { String(format: "%08X%08X%08X", 1, 0, number) }

    /// Pushes `count` new segments (64 KiB each, random), signed by `signer` (the suite's by default).
    @discardableResult
    func pushSegments(_ count: Int, signer: BackupSigner? = nil) throws -> [String] {
        try (0..<count).map { _ in
            let name = Self.segmentName(nextSegment)
            nextSegment += 1
            let path = "\(root)/segments/\(name)"
            try Data(generator.bytes(count: 65_536)).write(to: URL(fileURLWithPath: path))
            _ = try wal.push(segment: path, name: name, recipients: [identity.recipient], signer: signer ?? self.signer)
            return name
        }
    }

    /// A full backup whose base starts at the newest pushed segment (pushed first if
    /// none), signed by `signer`, chaining to what `trust` accepts (the suite's keys).
    @discardableResult
    func fullBackup(signer: BackupSigner? = nil, trust: BackupTrust? = nil) throws -> BackupSummary {
        if nextSegment == 1 { try pushSegments(1) }
        return try job(signer: signer, trust: trust, dataDirectory: "\(root)/pgdata").run(kind: .full, session: session(), walWait: .seconds(5))
    }

    /// A stand-in for pg_backup_start/pg_backup_stop whose label starts at the newest pushed segment.
    private func session() -> BackupSession {
        let start = nextSegment - 1
        let label = "START WAL LOCATION: 0/\(String(format: "%X", start << 24 | 0x28)) (file \(Self.segmentName(start)))\nSTART TIMELINE: 1\n"
        return BackupSession(start: { _ in }, stop: { (label, "") })
    }

    /// An incremental of the data directory (a direct copy) and the suite tree, starting at the newest pushed segment.
    @discardableResult
    func clusterIncremental() throws -> BackupSummary {
        try job(signer: nil, trust: nil, dataDirectory: "\(root)/pgdata").run(kind: .incremental, session: session(), walWait: .seconds(5))
    }

    /// An incremental backup of the suite tree (a file changed first).
    @discardableResult
    func incremental(signer: BackupSigner? = nil, trust: BackupTrust? = nil) throws -> BackupSummary {
        try Data(generator.bytes(count: 2_000)).write(to: URL(fileURLWithPath: "\(root)/suite/changed-\(nextSegment)"))
        return try job(signer: signer, trust: trust, dataDirectory: nil).run(kind: .incremental, walWait: .seconds(5))
    }

    private func job(signer: BackupSigner?, trust: BackupTrust?, dataDirectory: String?) -> BaseBackup {
        BaseBackup(
            connection: "", store: store, recipients: [identity.recipient], signer: signer ?? self.signer, trust: trust ?? self.trust,
            suiteFiles: [("\(root)/suite", "suite-tree")], dataDirectory: dataDirectory)
    }

    /// Writes `content` as WAL segment `name` the way an attacker on the backup host
    /// can: a one-member archive encrypted to the store's own recipient.
    func forgeSegment(_ name: String, content: [UInt8]) throws {
        let path = "\(store)/wal/\(name).tar.zst.age"
        unlink(path)
        let writer = try EncryptedArchiveWriter(path: path, recipients: [identity.recipient])
        try writer.addBytes(content, as: name, mode: 0o600)
        try writer.finish()
    }

    /// Reads a store file as text.
    func text(_ relative: String) throws -> String { try String(contentsOfFile: "\(store)/\(relative)", encoding: .utf8) }

    /// Writes a store file.
    func write(_ relative: String, _ text: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: "\(store)/\(relative)")) }
}

extension Array where Element == BackupProblem {
    /// Whether one of the problems names `subject`.
    func names(_ subject: String) -> Bool { contains { $0.subject == subject } }
}
