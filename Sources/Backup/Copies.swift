import Archive
import Foundation
import Glibc

/// What mirroring to a copy location did.
public struct CopyReport: Sendable, Codable {
    /// The copy location.
    public var location: String
    /// Files copied now (and read back identical).
    public var copied: [String] = []
    /// Files already there, identical.
    public var unchanged = 0
    /// Files that could not be copied or did not read back identical, or that the
    /// store holds in a form its signature refuses (never copied over the copy's).
    public var failures: [String] = []
    /// Files the copy holds that the store pruned (a signed tombstone, or WAL older
    /// than every trusted backup), removed.
    public var removed: [String] = []
    /// Files the copy holds that the store lacks without having pruned them: kept.
    public var kept: [String] = []
}

/// Externalisation: each copy location (a mounted remote path) mirrors the store.
/// Every file copied is written under a temporary name, synced, renamed, and then
/// read back and compared with the store's by SHA-256 — a copy is only counted
/// once it is known to be identical. Only what the suite signed travels: a file
/// that differs from its signature is not copied, an unsigned file never replaces
/// a signed one, and a file leaves a copy only when the store pruned it (a signed
/// tombstone, or WAL older than every trusted backup) — the backup host cannot
/// empty the copies by emptying the store. After a complete mirror the location
/// gets its signed state (``StoreHead``).
public struct BackupCopies: Sendable {
    /// The store.
    public let store: String
    /// The keys whose signatures are accepted.
    public let trust: BackupTrust
    /// Signs each location's state after a complete mirror (nil: no state written).
    public let signer: BackupSigner?

    /// Copies of `store`, checked against `trust` (with the signer's own keys).
    public init(store: String, trust: BackupTrust, signer: BackupSigner?) {
        self.store = store
        self.trust = BackupTrust(keys: (signer.map { trust.adding($0) } ?? trust).keys)
        self.signer = signer
    }

    /// The files of the store that copies hold: complete backups and the WAL archive.
    func storeFiles() throws -> [String] {
        var files: [String] = []
        for summary in try BackupCatalogue(store: store).summaries() {
            for name in ["data.tar.zst.age", "manifest.json.age", "summary.json", BackupCatalogue.signatureName]
            where FileManager.default.fileExists(atPath: "\(store)/base/\(summary.id)/\(name)") {
                files.append("base/\(summary.id)/\(name)")
            }
        }
        if FileManager.default.fileExists(atPath: "\(store)/base/pruned.log") { files.append("base/pruned.log") }
        let wal = "\(store)/wal"
        if FileManager.default.fileExists(atPath: wal) {
            files += try FileManager.default.contentsOfDirectory(atPath: wal).filter { !$0.hasSuffix(".partial") && !$0.hasSuffix(".new") }.sorted()
                .map { "wal/\($0)" }
        }
        return files
    }

    static func digest(_ path: String) throws -> String { try FileBlocks.sha256(ofFile: path).sha256 }

    /// What a signature says of a file of a store (or copy) rooted at `root`.
    enum Coverage {
        /// No signature covers it (a log, a store from before signing).
        case unsigned
        /// Its signature holds and gives this SHA-256 (nil: the file is the signature itself).
        case signed(sha256: String?)
        /// Its signature is missing where one must be, or does not hold.
        case refused(String)
    }

    /// The signature covering `relative` under `root`, checked.
    func coverage(_ relative: String, root: String) -> Coverage {
        let parts = relative.split(separator: "/").map(String.init)
        let note: (path: String, kind: BackupStatement.Kind, subject: String, file: String?)
        if parts.count == 3, parts[0] == "base" {
            note = ("base/\(parts[1])/\(BackupCatalogue.signatureName)", .backup, parts[1], parts[2] == BackupCatalogue.signatureName ? nil : parts[2])
        } else if parts.count == 2, parts[0] == "wal", parts[1].hasSuffix(".tar.zst.age") || parts[1].hasSuffix(".sig") {
            let name = parts[1].hasSuffix(".sig") ? String(parts[1].dropLast(4)) : String(parts[1].dropLast(12))
            note = ("wal/\(name).sig", .wal, name, parts[1].hasSuffix(".sig") ? nil : parts[1])
        } else {
            return .unsigned
        }
        guard let text = FileManager.default.contents(atPath: "\(root)/\(note.path)") else { return .unsigned }
        do {
            let statement = try trust.authenticate(String(decoding: text, as: UTF8.self), file: note.path, kind: note.kind, subject: note.subject).statement
            guard let file = note.file else { return .signed(sha256: nil) }
            guard let signed = statement.file(file) else { return .refused("\(note.path) does not cover it") }
            return .signed(sha256: signed.sha256)
        } catch {
            return .refused("\(error)")
        }
    }

    /// Brings `location` up to date with the store: copies what is missing or
    /// differs (then reads it back), removes what the store pruned, and, after a
    /// complete mirror with a signer, writes the location's signed state. `only`
    /// limits the work to those relative paths (a just-pushed WAL file).
    public func mirror(to location: String, only: [String]? = nil) -> CopyReport {
        var report = CopyReport(location: location)
        let files: [String]
        do {
            files = try only ?? storeFiles()
        } catch {
            report.failures.append("listing the store: \(error)")
            return report
        }
        for relative in files {
            let source = "\(store)/\(relative)"
            let destination = "\(location)/\(relative)"
            do {
                let digest = try Self.digest(source)
                if FileManager.default.fileExists(atPath: destination), try Self.digest(destination) == digest {
                    report.unchanged += 1
                    continue
                }
                switch coverage(relative, root: store) {
                case .refused(let reason):
                    throw ArchiveError("not copied: the store's file is not what the suite signed (\(reason))")
                case .signed(let sha256?) where sha256 != digest:
                    throw ArchiveError("not copied: the store's file differs from its signature (replaced or damaged)")
                case .unsigned where FileManager.default.fileExists(atPath: destination):
                    if case .signed = coverage(relative, root: location) {
                        throw ArchiveError("not copied: the store's file is unsigned, the copy's is signed")
                    }
                default:
                    break
                }
                try FileManager.default.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                guard let content = FileManager.default.contents(atPath: source) else { throw ArchiveError("cannot read \(source)") }
                try writeDurably(Array(content), to: destination)
                guard try Self.digest(destination) == digest else { throw ArchiveError("\(destination) does not read back identical") }
                report.copied.append(relative)
            } catch {
                report.failures.append("\(relative): \(error)")
            }
        }
        guard only == nil else { return report }
        removePruned(from: location, keeping: Set(files), report: &report)
        if report.failures.isEmpty, let signer {
            do {
                try StoreHead.writeCopyState(location: location, store: store, signer: signer, trust: trust)
            } catch {
                report.failures.append("\(StoreHead.copyStateFileName): \(error)")
            }
        }
        return report
    }

    /// Removes from the copy what the store pruned: the files of a backup with a
    /// signed tombstone, WAL files older than the oldest trusted backup's start.
    /// Whatever else the store lacks stays in the copy, reported.
    private func removePruned(from location: String, keeping files: Set<String>, report: inout CopyReport) {
        let audit = BackupCatalogue(store: store).audit(trust: trust)
        let failed = Set(audit.failures.map(\.subject))
        let tombstoned = Set(audit.pruned.filter { $0.signature != nil && !failed.contains("base/pruned.log (\($0.id))") }.map(\.id))
        let oldestStart = audit.trusted.filter { audit.signatures[$0.id] != nil }.map(\.walStart).min()
        for directory in ["base", "wal"] {
            guard let walker = FileManager.default.enumerator(atPath: "\(location)/\(directory)") else { continue }
            for case let path as String in walker where !files.contains("\(directory)/\(path)") {
                var isDirectory: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: "\(location)/\(directory)/\(path)", isDirectory: &isDirectory)
                guard !isDirectory.boolValue else { continue }
                let relative = "\(directory)/\(path)"
                let pruned: Bool
                if directory == "base" {
                    pruned = path.split(separator: "/").first.map { tombstoned.contains(String($0)) } ?? false
                } else {
                    pruned = !path.contains(".history") && oldestStart.map { String(path.prefix(24)) < $0 } ?? false
                }
                if pruned || path.hasSuffix(".partial") {
                    try? FileManager.default.removeItem(atPath: "\(location)/\(relative)")
                    report.removed.append(relative)
                } else {
                    report.kept.append(relative)
                }
            }
        }
    }
}
