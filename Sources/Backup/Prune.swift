import Archive
import Foundation
import Glibc
public import Settings

/// What prune keeps and removes.
public struct PrunePlan: Sendable, Codable {
    /// Backups kept, with the rules that keep them.
    public var kept: [String: [String]] = [:]
    /// Backups removed.
    public var removed: [String] = []
    /// WAL files removed (older than what the oldest kept backup needs).
    public var walRemoved: [String] = []
}

/// Applies `policies/backup.yaml`: keeps every backup a rule selects (and never
/// fewer than the floor), removes the others, and removes only the WAL that no
/// kept backup needs (older than the oldest kept backup's start).
public struct BackupPruner: Sendable {
    /// The store.
    public let store: String
    /// The policy.
    public let policy: BackupPolicy
    /// Which backups count: those signed by `trust`'s keys (or, in a store from before
    /// signing, older than the first signed one). A backup the backup host added is
    /// neither kept nor given a tombstone: verify keeps reporting it.
    public let trust: BackupTrust

    /// A pruner of `store`.
    public init(store: String, policy: BackupPolicy, trust: BackupTrust) {
        self.store = store
        self.policy = policy
        self.trust = BackupTrust(keys: trust.keys, acceptUnsigned: true)
    }

    /// The plan for the backups in the store now.
    public func plan() throws -> PrunePlan {
        let summaries = BackupCatalogue(store: store).audit(trust: trust).trusted.sorted { $0.id > $1.id }  // newest first
        var plan = PrunePlan()
        func keep(_ id: String, _ rule: String) { plan.kept[id, default: []].append(rule) }
        for summary in summaries.prefix(policy.keepLast) { keep(summary.id, "last \(policy.keepLast)") }
        for summary in summaries.prefix(policy.floor) { keep(summary.id, "floor \(policy.floor)") }
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        for (rule, count) in [("daily", policy.daily), ("weekly", policy.weekly), ("monthly", policy.monthly)] {
            var seen: [String] = []
            for summary in summaries {
                guard seen.count < count, let date = BackupSummary.date(summary.finished) else { continue }
                let period: String
                switch rule {
                case "daily": period = String(summary.finished.prefix(10))
                case "monthly": period = String(summary.finished.prefix(7))
                default:
                    let week = calendar.dateComponents([.yearForWeekOfYear, .weekOfYear], from: date)
                    period = "\(week.yearForWeekOfYear ?? 0)-W\(week.weekOfYear ?? 0)"
                }
                if !seen.contains(period) {
                    seen.append(period)
                    keep(summary.id, rule)
                }
            }
        }
        // A kept incremental keeps its base and every backup holding files of its tree
        // (those are older: one pass from the newest down reaches them all).
        let known = Dictionary(summaries.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for summary in summaries where plan.kept[summary.id] != nil {
            for needed in summary.needs where known[needed] != nil { keep(needed, "needed by \(summary.id)") }
        }
        plan.removed = summaries.map(\.id).filter { plan.kept[$0] == nil }.sorted()
        // WAL: what the oldest kept backup starts from, and everything after it, stays.
        if let oldestKept = summaries.last(where: { plan.kept[$0.id] != nil }) {
            let start = oldestKept.walStart
            plan.walRemoved = try WALArchive(store: store).names().filter { name in
                // Segments and .backup labels older than the start (timelines compare by their prefix); histories stay.
                !name.hasSuffix(".history") && String(name.prefix(24)) < start
            }
        }
        return plan
    }

    /// Carries out `plan`: each backup leaves a signed tombstone in `base/pruned.log`
    /// (its summary's links, so that verify can still follow the catalogue's hash
    /// chain across it), then its directory is renamed away and removed; the push log
    /// is rewritten without the WAL files that go, then they go with their signatures.
    public func apply(_ plan: PrunePlan, signer: BackupSigner) throws {
        let catalogue = BackupCatalogue(store: store)
        let summaries = Dictionary(catalogue.audit(trust: trust).trusted.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let tombstones = plan.removed.compactMap { summaries[$0] }.map { PrunedBackup(summary: $0, prunedAt: BaseBackup.timestamp(Date(), compact: false)) }
        if !tombstones.isEmpty { try catalogue.recordPruned(tombstones, signer: signer) }
        for id in plan.removed {
            let directory = catalogue.directory(id)
            let doomed = directory + ".pruning"
            guard rename(directory, doomed) == 0 else { throw ArchiveError("renaming \(directory) failed: \(String(cString: strerror(errno)))") }
            try FileManager.default.removeItem(atPath: doomed)
        }
        let wal = WALArchive(store: store)
        // The push log forgets them first: a file the log names is always in the store
        // (what verify relies on); a crash in between leaves files the next prune removes.
        if !plan.walRemoved.isEmpty, let log = FileManager.default.contents(atPath: wal.logPath) {
            let removed = Set(plan.walRemoved)
            let kept = String(decoding: log, as: UTF8.self).split(separator: "\n").filter { !removed.contains(String($0.split(separator: " ").first ?? "")) }
            try writeDurably(Array(kept.map { $0 + "\n" }.joined().utf8), to: wal.logPath)
        }
        for name in plan.walRemoved {
            try? FileManager.default.removeItem(atPath: wal.archivePath(name))
            try? FileManager.default.removeItem(atPath: wal.digestPath(name))
            try? FileManager.default.removeItem(atPath: wal.signaturePath(name))
        }
        try syncDirectory(of: catalogue.directory("x"))
    }
}
