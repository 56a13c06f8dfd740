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
    /// Files that could not be copied or did not read back identical.
    public var failures: [String] = []
    /// Files the copy holds that the store no longer has (pruned), removed.
    public var removed: [String] = []
}

/// Externalisation: each copy location (a mounted remote path) mirrors the store.
/// Every file copied is written under a temporary name, synced, renamed, and then
/// read back and compared with the store's by SHA-256 — a copy is only counted
/// once it is known to be identical.
public struct BackupCopies: Sendable {
    /// The store.
    public let store: String

    /// Copies of `store`.
    public init(store: String) { self.store = store }

    /// The files of the store that copies hold: complete backups and the WAL archive.
    func storeFiles() throws -> [String] {
        var files: [String] = []
        for summary in try BackupCatalogue(store: store).summaries() {
            for name in ["data.tar.zst.age", "manifest.json.age", "summary.json"] { files.append("base/\(summary.id)/\(name)") }
        }
        if FileManager.default.fileExists(atPath: "\(store)/base/pruned.log") { files.append("base/pruned.log") }
        let wal = "\(store)/wal"
        if FileManager.default.fileExists(atPath: wal) {
            files += try FileManager.default.contentsOfDirectory(atPath: wal).filter { !$0.hasSuffix(".partial") }.sorted().map { "wal/\($0)" }
        }
        return files
    }

    static func digest(_ path: String) throws -> String { try FileBlocks.sha256(ofFile: path).sha256 }

    /// Brings `location` up to date with the store: copies what is missing or
    /// differs (then reads it back), removes what the store pruned. `only` limits
    /// the work to those relative paths (a just-pushed WAL file).
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
                try FileManager.default.createDirectory(atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                guard let content = FileManager.default.contents(atPath: source) else { throw ArchiveError("cannot read \(source)") }
                try writeDurably(Array(content), to: destination)
                guard try Self.digest(destination) == digest else { throw ArchiveError("\(destination) does not read back identical") }
                report.copied.append(relative)
            } catch {
                report.failures.append("\(relative): \(error)")
            }
        }
        if only == nil {
            // What the store pruned goes from the copy too (the prune was journaled).
            let kept = Set(files)
            for directory in ["base", "wal"] {
                guard let walker = FileManager.default.enumerator(atPath: "\(location)/\(directory)") else { continue }
                for case let path as String in walker where !kept.contains("\(directory)/\(path)") {
                    var isDirectory: ObjCBool = false
                    _ = FileManager.default.fileExists(atPath: "\(location)/\(directory)/\(path)", isDirectory: &isDirectory)
                    if !isDirectory.boolValue {
                        try? FileManager.default.removeItem(atPath: "\(location)/\(directory)/\(path)")
                        report.removed.append("\(directory)/\(path)")
                    }
                }
            }
        }
        return report
    }
}
