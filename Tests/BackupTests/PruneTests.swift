import Backup
import Foundation
import Journal
import Settings
import Testing
import TestSupport

@Suite("Backup retention (prune)")
struct PruneTests {
    /// A store with one backup per day for 40 days (each starting at its own WAL segment).
    func store() throws -> String {
        let store = try scratchDirectory("prune")
        try FileManager.default.createDirectory(atPath: "\(store)/wal", withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        var log = ""
        for day in 0..<40 {
            let date = Date(timeIntervalSince1970: 1_790_000_000 + Double(day) * 86_400)
            let formatter = ISO8601DateFormatter()
            let finished = formatter.string(from: date)
            let id = finished.replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "")
            let segment = String(format: "%08X%08X%08X", 1, 0, day * 2 + 2)
            let summary = BackupSummary(
                id: id, kind: "full", started: finished, finished: finished, walStart: segment, walEnd: segment, parent: nil, parentManifestSHA256: nil,
                manifestSHA256: String(repeating: "0", count: 64), recipients: ["0123456789abcdef"], bytes: 100, memberCount: 1)
            try FileManager.default.createDirectory(atPath: "\(store)/base/\(id)", withIntermediateDirectories: true)
            try encoder.encode(summary).write(to: URL(fileURLWithPath: "\(store)/base/\(id)/summary.json"))
            for offset in 0..<2 {
                let name = String(format: "%08X%08X%08X", 1, 0, day * 2 + 2 + offset)
                _ = FileManager.default.createFile(atPath: "\(store)/wal/\(name).tar.zst.age", contents: Data([1]))
                _ = FileManager.default.createFile(atPath: "\(store)/wal/\(name).sha256", contents: Data("x\n".utf8))
                log += "\(name) x\n"
            }
        }
        _ = FileManager.default.createFile(atPath: "\(store)/wal/00000002.history.tar.zst.age", contents: Data([1]))
        try log.write(toFile: "\(store)/wal/pushed.log", atomically: true, encoding: .utf8)
        return store
    }

    @Test("Keeps last, daily, weekly and monthly picks and the floor; removes the rest and only the WAL older than the oldest kept backup")
    func retention() throws {
        let store = try store()
        defer { try? FileManager.default.removeItem(atPath: store) }
        // Unsigned summaries, as a store from before signing holds: prune counts them (they precede anything signed).
        let signer = try BackupSigner(keys: [try NoteSignerKey.generate(name: "test.osmose.example/backup")])
        let trust = BackupTrust(keys: []).adding(signer)
        let pruner = BackupPruner(store: store, policy: BackupPolicy(keepLast: 3, daily: 7, weekly: 3, monthly: 2, floor: 2), trust: trust)
        let plan = try pruner.plan()
        let all = try BackupCatalogue(store: store).summaries().map(\.id)
        #expect(all.count == 40)
        #expect(Set(all.suffix(7)).isSubset(of: Set(plan.kept.keys)), "the last 7 days")
        #expect(plan.kept.count + plan.removed.count == 40 && plan.kept.count < 14 && plan.kept.count >= 7, "\(plan.kept)")
        let oldestKept = plan.kept.keys.min()!
        let oldestStart = try BackupCatalogue(store: store).summaries().first { $0.id == oldestKept }!.walStart
        #expect(plan.walRemoved.allSatisfy { $0 < oldestStart } && !plan.walRemoved.isEmpty)
        #expect(!plan.walRemoved.contains { $0.hasSuffix(".history") })

        try pruner.apply(plan, signer: signer)
        // Each tombstone is signed.
        let tombstones = try BackupCatalogue(store: store).pruned()
        #expect(tombstones.count == plan.removed.count)
        for tombstone in tombstones {
            let statement = try trust.authenticate(tombstone.signature ?? "", file: "pruned.log", kind: .pruned, subject: tombstone.id).statement
            #expect(statement.value("manifest-sha256") == tombstone.manifestSHA256 && statement.value("pruned-at") == tombstone.prunedAt)
        }
        #expect(Set(try BackupCatalogue(store: store).summaries().map(\.id)) == Set(plan.kept.keys))
        let remaining = try WALArchive(store: store).names()
        #expect(remaining.filter { $0.count == 24 }.min() == oldestStart, "every segment from the oldest kept start on stays")
        #expect(try WALArchive(store: store).pushedNames().min() == oldestStart, "the push log forgets removed segments")

        // A second run removes nothing more; a floor above what the rules keep wins.
        #expect(try pruner.plan().removed.isEmpty)
        let strict = BackupPruner(store: store, policy: BackupPolicy(keepLast: 0, daily: 0, weekly: 0, monthly: 0, floor: 5), trust: trust)
        #expect(try strict.plan().kept.count == 5)
    }
}
