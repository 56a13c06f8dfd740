import Age
import Archive
@testable import Backup
import Foundation
import Glibc
import Testing
import TestSupport

/// The rule that leaves a data file out of an incremental of the cluster, tested
/// without I/O, then incrementals of a small data directory written and restored by
/// the real code paths (real age, libarchive, zstd, Ed25519). The same on a running
/// PostgreSQL cluster, with point-in-time restores, is in the end-to-end tests.
@Suite("Incrementals of the cluster")
struct ClusterIncrementalTests {
    let second: Int64 = 1_000_000_000
    var parentStart: Int64 { 1_800_000_000 * second }

    func recorded(_ state: ClusterFileState) -> SuiteTreeEntry {
        var entry = SuiteTreeEntry(
            path: "pgdata/base/1/16384", kind: "file", mode: 0o600, modifiedNanoseconds: state.modifiedNanoseconds, size: state.size, sha256: "ab",
            backup: "20270115T000000.000Z", inode: state.inode)
        entry.changedNanoseconds = state.changedNanoseconds
        return entry
    }

    @Test("Unchanged only when size, times and inode are the parent's and the last change precedes the parent's start by more than the margin; same size and time otherwise hashed; anything else copied")
    func rule() {
        let rule = ClusterChangeRule(parentStartedNanoseconds: parentStart, nowNanoseconds: parentStart + 3600 * second)
        let old = ClusterFileState(size: 8192, modifiedNanoseconds: parentStart - 10 * second, changedNanoseconds: parentStart - 10 * second, inode: 42)
        #expect(rule.decide(old, previous: recorded(old)) == .unchanged)
        // Rewritten in place, its modification time put back: the status-change time moved.
        var rewritten = old
        rewritten.changedNanoseconds = parentStart + 60 * second
        #expect(rule.decide(rewritten, previous: recorded(old)) == .compareChecksum)
        // Changed during the parent's run (or within the clock's coarseness before it): hashed, even if the parent recorded that very state.
        var duringParent = old
        duringParent.changedNanoseconds = parentStart - ClusterChangeRule.margin / 2
        #expect(rule.decide(duringParent, previous: recorded(duringParent)) == .compareChecksum)
        // Another file under the same name (a replaced relation file).
        var replaced = old
        replaced.inode = 43
        #expect(rule.decide(replaced, previous: recorded(old)) == .compareChecksum)
        // Size or modification time changed: copied without hashing.
        var grown = old
        grown.size += 8192
        #expect(rule.decide(grown, previous: recorded(old)) == .copy)
        var touched = old
        touched.modifiedNanoseconds += 1
        #expect(rule.decide(touched, previous: recorded(old)) == .copy)
        // New, or listed without a content reference.
        #expect(rule.decide(old, previous: nil) == .copy)
        var unreferenced = recorded(old)
        unreferenced.backup = nil
        #expect(rule.decide(old, previous: unreferenced) == .copy)
        // A parent from before status-change times were recorded: hashed.
        var legacy = recorded(old)
        legacy.changedNanoseconds = nil
        #expect(rule.decide(old, previous: legacy) == .compareChecksum)
        // The clock went back since the parent started: no time can be trusted.
        let backwards = ClusterChangeRule(parentStartedNanoseconds: parentStart, nowNanoseconds: parentStart - second)
        #expect(backwards.decide(old, previous: recorded(old)) == .compareChecksum)
    }

    /// The content of every file under `directory`, by relative path.
    func files(_ directory: String) throws -> [String: Data] {
        var found: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: directory)
        while let path = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: "\(directory)/\(path)", isDirectory: &isDirectory), !isDirectory.boolValue {
                found[path] = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(path)"))
            }
        }
        return found
    }

    @Test("A restore reads each holder in runs from the frame of their first file: unneeded stretches over 32 MiB start a new run, a run past 256 MiB ends at the next frame, an archive without frames is one run from its start, a file its holder's manifest lacks is refused")
    func restoreRuns() throws {
        func member(_ path: String, _ size: Int64, _ frame: Int64?) -> ArchiveMember { ArchiveMember(path: path, size: size, sha256: "h-" + path, frame: frame) }
        // Archive order: small files sharing frame 0, a large table (frame 100), small files (frame 900),
        // two huge segments (frames 1000 and 5000), a small one after them (frame 9000).
        let order = [
            member("pgdata/a", 8_192, 0), member("pgdata/b", 8_192, 0), member("pgdata/big", 40 << 20, 100),
            member("pgdata/c", 8_192, 900), member("pgdata/d", 8_192, 900),
            member("pgdata/seg", 300 << 20, 1_000), member("pgdata/seg.1", 300 << 20, 5_000), member("pgdata/e", 8_192, 9_000),
        ]
        func wanted(_ paths: [String]) -> [String: ArchiveMember] {
            Dictionary(uniqueKeysWithValues: order.filter { paths.contains($0.path) }.map { ($0.path, ArchiveMember(path: $0.path, size: $0.size, sha256: $0.sha256)) })
        }
        // The manifest lists them sorted by path, not in the order written.
        let listed = order.sorted { $0.path < $1.path }
        #expect(try ClusterRestoreRuns.plan(holder: "F", members: listed, wanted: wanted(["pgdata/seg", "pgdata/seg.1", "pgdata/e"])).map(\.frame) == [1_000, 5_000, 9_000])
        #expect(try ClusterRestoreRuns.plan(holder: "F", members: listed, wanted: wanted(["pgdata/a", "pgdata/b", "pgdata/d"])).map(\.frame) == [0, 900])
        // a and c: 40 MiB of an unneeded table between them: two runs, each from its frame.
        let apart = try ClusterRestoreRuns.plan(holder: "F", members: order, wanted: wanted(["pgdata/a", "pgdata/c"]))
        #expect(apart.map(\.frame) == [0, 900] && apart.map { $0.members.keys.sorted() } == [["pgdata/a"], ["pgdata/c"]])
        let near = try ClusterRestoreRuns.plan(holder: "F", members: order, wanted: wanted(["pgdata/a", "pgdata/b", "pgdata/big", "pgdata/c", "pgdata/d"]))
        #expect(near.count == 1 && near[0].frame == 0 && near[0].members.count == 5, "nothing unneeded between them: one run")
        // Huge segments: a run over 256 MiB ends at the next frame, so each is read by a run of its own.
        let huge = try ClusterRestoreRuns.plan(holder: "F", members: order, wanted: wanted(["pgdata/seg", "pgdata/seg.1", "pgdata/e"]))
        #expect(huge.map(\.frame) == [1_000, 5_000, 9_000] && huge.map(\.bytes) == [300 << 20, 300 << 20, 8_192])
        // Under 256 MiB, a run goes on across frames: big (40 MiB), then c and d.
        let table = try ClusterRestoreRuns.plan(holder: "F", members: order, wanted: wanted(["pgdata/big", "pgdata/c"]))
        #expect(table.map(\.frame) == [100] && table[0].members.count == 2)
        // Only e: one run from its own frame, nothing before it read.
        #expect(try ClusterRestoreRuns.plan(holder: "F", members: order, wanted: wanted(["pgdata/e"])).map(\.frame) == [9_000])
        // Written before frames were recorded: one run from the start.
        let old = order.map { ArchiveMember(path: $0.path, size: $0.size, sha256: $0.sha256) }
        let whole = try ClusterRestoreRuns.plan(holder: "F", members: old, wanted: wanted(["pgdata/c", "pgdata/e"]))
        #expect(whole.count == 1 && whole[0].frame == 0 && whole[0].members.count == 2)
        #expect(try ClusterRestoreRuns.plan(holder: "F", members: order, wanted: [:]).isEmpty)
        #expect(throws: ArchiveError.self) {
            try ClusterRestoreRuns.plan(holder: "F", members: order, wanted: ["pgdata/z": ArchiveMember(path: "pgdata/z", size: 1, sha256: "x")])
        }
        #expect(throws: ArchiveError.self, "a negative frame is refused, not read from the start") {
            try ClusterRestoreRuns.plan(holder: "F", members: order + [member("pgdata/n", 1, -1)], wanted: wanted(["pgdata/a"]))
        }
    }

    @Test("verify --read-data checks the manifest's frames: reading from each meets first the file it should; a member given the next member's frame, an offset off a frame's start, or frames going back are reported; an earlier frame that still reaches the member is not")
    func framesChecked() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-frames-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let identity = try AgeIdentity.generate()
        let path = "\(directory)/data.tar.zst.age"
        let writer = try EncryptedArchiveWriter(path: path, recipients: [identity.recipient])
        var generator = TestSeed.generator(test: "verify frames")
        for index in 0..<3 { try writer.addBytes(generator.bytes(count: 1_200_000), as: "pgdata/base/1/\(16_384 + index)") }
        try writer.addBytes(Array("16384\n".utf8), as: "pgdata/PG_VERSION")
        try writer.finish()
        let members = writer.members.sorted { $0.path < $1.path }  // as a manifest lists them
        let order = writer.members.map(\.path)  // as a whole read meets them
        #expect(BackupVerifier.checkFrames(members, archiveOrder: order, archivePath: path, identities: [identity]).isEmpty)
        func moved(_ path: String, to frame: Int64) -> [ArchiveMember] {
            members.map { $0.path == path ? ArchiveMember(path: $0.path, size: $0.size, sha256: $0.sha256, frame: frame) : $0 }
        }
        let second = writer.members[1]
        let other = moved(second.path, to: writer.members[2].frame!)
        #expect(BackupVerifier.checkFrames(other, archiveOrder: order, archivePath: path, identities: [identity]).count == 1, "the next member's frame")
        let earlier = moved(writer.members[2].path, to: second.frame!)
        #expect(BackupVerifier.checkFrames(earlier, archiveOrder: order, archivePath: path, identities: [identity]).isEmpty, "an earlier frame still reaches it")
        let off = moved(second.path, to: second.frame! + 7)
        let failures = BackupVerifier.checkFrames(off, archiveOrder: order, archivePath: path, identities: [identity])
        #expect(failures.count == 1 && failures[0].contains("frame \(second.frame! + 7)"), "\(failures)")
        let backwards = moved(writer.members[2].path, to: 0)
        #expect(!BackupVerifier.checkFrames(backwards, archiveOrder: order, archivePath: path, identities: [identity]).isEmpty, "frames going back")
    }

    @Test("A file rewritten in place with the same size and modification time is stored again and restored with its new content; unchanged files are referred to; deleted files stay deleted; verify follows the references")
    func sameSizeAndTime() async throws {
        try await SignedStore.with("cluster-incremental") { fixture in
            let pgdata = "\(fixture.root)/pgdata"
            let relation = "\(pgdata)/base/1/16384"
            try Data(fixture.generator.bytes(count: 4_096)).write(to: URL(fileURLWithPath: "\(pgdata)/base/1/16390"))
            try FileManager.default.createDirectory(atPath: "\(pgdata)/pg_notify", withIntermediateDirectories: true)
            try fixture.pushSegments(2)
            let full = try fixture.fullBackup()

            // Rewritten in place: same size, its modification time put back to the nanosecond.
            var before = stat()
            #expect(stat(relation, &before) == 0)
            let rewritten = fixture.generator.bytes(count: Int(before.st_size))
            try Data(rewritten).write(to: URL(fileURLWithPath: relation))
            var times = [before.st_atim, before.st_mtim]
            #expect(utimensat(AT_FDCWD, relation, &times, 0) == 0)
            var after = stat()
            #expect(stat(relation, &after) == 0)
            #expect(after.st_size == before.st_size && after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
            try FileManager.default.removeItem(atPath: "\(pgdata)/base/1/16390")
            try Data(fixture.generator.bytes(count: 1_000)).write(to: URL(fileURLWithPath: "\(pgdata)/base/1/16391"))
            try fixture.pushSegments(1)
            let first = try fixture.clusterIncremental()
            #expect(first.kind == "incremental" && first.base == full.id)
            let manifest = try fixture.catalogue.manifest(first.id, identities: [fixture.identity])
            let holders = Dictionary(uniqueKeysWithValues: (manifest.cluster ?? []).filter { $0.kind == "file" }.map { ($0.path, $0.backup ?? "") })
            #expect(holders["pgdata/base/1/16384"] == first.id, "rewritten with the same size and time: stored again")
            #expect(holders["pgdata/base/1/16391"] == first.id && holders["pgdata/backup_label"] == first.id)
            #expect(holders["pgdata/global/pg_control"] == full.id && holders["pgdata/PG_VERSION"] == full.id, "unchanged: referred to")
            #expect(holders["pgdata/base/1/16390"] == nil, "deleted: not listed")
            #expect(Set(manifest.members.map(\.path)) == ["pgdata/base/1/16384", "pgdata/base/1/16391", "pgdata/backup_label"], "\(manifest.members.map(\.path))")
            #expect(first.walStart == SignedStore.segmentName(3), "the WAL from the incremental's own start")

            // Nothing changed, more than the margin later: every file is referred to, none stored again.
            try await Task.sleep(for: .milliseconds(1_100))
            try fixture.pushSegments(1)
            let second = try fixture.clusterIncremental()
            let secondManifest = try fixture.catalogue.manifest(second.id, identities: [fixture.identity])
            #expect(secondManifest.members.map(\.path) == ["pgdata/backup_label"], "\(secondManifest.members.map(\.path))")
            #expect(Set(second.references ?? []) == [full.id, first.id])

            let verification = BackupVerifier(store: fixture.store, identities: [fixture.identity], trust: fixture.trust).verify(all: true, readData: true)
            #expect(verification.passed, "\(verification.problems)")

            let restorer = BackupRestore(store: fixture.store, identities: [fixture.identity], trust: fixture.trust)
            let plan = try restorer.prepare(.latest)
            #expect(plan.base.id == second.id && plan.clusterHolders == [full.id, first.id, second.id].sorted() && plan.walFrom == second.walStart)
            let target = "\(fixture.root)/restored"
            _ = try restorer.restore(plan, into: target, restoreCommand: "false")
            var expected = try files(pgdata)
            expected["backup_label"] = Data("START WAL LOCATION: 0/\(String(format: "%X", 4 << 24 | 0x28)) (file \(SignedStore.segmentName(4)))\nSTART TIMELINE: 1\n".utf8)
            var restored = try files(target)
            #expect(restored.removeValue(forKey: "recovery.signal") != nil && restored.removeValue(forKey: "postgresql.auto.conf") != nil)
            #expect(restored == expected, "\(restored.keys.sorted()) against \(expected.keys.sorted())")
            #expect(restored["base/1/16384"] == Data(rewritten))
            var isDirectory: ObjCBool = false
            #expect(FileManager.default.fileExists(atPath: "\(target)/pg_notify", isDirectory: &isDirectory) && isDirectory.boolValue, "empty directories come back")
            #expect(FileManager.default.fileExists(atPath: "\(target)/pg_wal/archive_status"))
        }
    }

    @Test("A holder's archive replaced: restore stops at the first file that differs from the list and leaves nothing that could start; verify names the archive")
    func damagedHolder() async throws {
        try await SignedStore.with("cluster-holder") { fixture in
            try fixture.pushSegments(2)
            try fixture.fullBackup()
            try Data(fixture.generator.bytes(count: 2_000)).write(to: URL(fileURLWithPath: "\(fixture.root)/pgdata/base/1/16392"))
            try fixture.pushSegments(1)
            let first = try fixture.clusterIncremental()
            try fixture.pushSegments(1)
            let second = try fixture.clusterIncremental()
            #expect((second.references ?? []).contains(first.id))
            // The holder's archive replaced by the next backup's (a valid archive, to the same recipient).
            try FileManager.default.removeItem(atPath: "\(fixture.store)/base/\(first.id)/data.tar.zst.age")
            try FileManager.default.copyItem(atPath: "\(fixture.store)/base/\(second.id)/data.tar.zst.age", toPath: "\(fixture.store)/base/\(first.id)/data.tar.zst.age")
            let restorer = BackupRestore(store: fixture.store, identities: [fixture.identity], trust: fixture.trust)
            let plan = try restorer.prepare(.latest)
            let target = "\(fixture.root)/restored"
            #expect(throws: ArchiveError.self) { _ = try restorer.restore(plan, into: target, restoreCommand: "false") }
            #expect(try FileManager.default.contentsOfDirectory(atPath: target).isEmpty, "emptied")
            let verification = BackupVerifier(store: fixture.store, identities: [fixture.identity], trust: fixture.trust).verify(all: true)
            #expect(verification.problems.names("base/\(first.id)/data.tar.zst.age"), "\(verification.problems)")
        }
    }
}
