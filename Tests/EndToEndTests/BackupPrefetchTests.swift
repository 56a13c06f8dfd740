import Age
import Foundation
import Glibc
import Testing
import TestSupport

/// wal-fetch's prefetching: the next segments decrypted in the background into the
/// spool (pg_wal/osmose-prefetch) while PostgreSQL replays; each handed over only
/// after its signature and SHA-256 are checked again; a prefetcher killed mid-work
/// leaves nothing a later fetch would use unchecked.
@Suite("wal-fetch prefetching", .serialized)
struct BackupPrefetchTests {
    let backupd = builtExecutablesDirectory().appendingPathComponent("osmose-backupd").path

    /// A store of `count` signed 16 MiB segments pushed by wal-push, in a scratch
    /// directory with a stand-in data directory in recovery (`data/recovery.signal`).
    func withStore(count: Int, test: String, _ body: (String, String, [String: [UInt8]]) async throws -> Void) async throws {
        let directory = "/tmp/osmose-prefetch-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: "\(directory)/data/pg_wal", withIntermediateDirectories: true)
        defer {
            // Recovery over: a lingering prefetcher empties its spool and exits.
            unlink("\(directory)/data/recovery.signal")
            usleep(500_000)
            try? FileManager.default.removeItem(atPath: directory)
        }
        _ = FileManager.default.createFile(atPath: "\(directory)/data/recovery.signal", contents: Data())
        let identity = try AgeIdentity.generate()
        try identity.exposedFile(created: "test").write(toFile: "\(directory)/identity.txt", atomically: true, encoding: .utf8)
        let signing = try BackupSigningKey(in: directory)
        let config = "\(directory)/osmose.yaml"
        try "backup:\n  store: \(directory)/store\n  recipients: [\"\(identity.recipient.encoded)\"]\n  identity_file: \(directory)/identity.txt\n\(signing.settings)"
            .write(toFile: config, atomically: true, encoding: .utf8)
        var random = TestSeed.generator(test: test)
        var segments: [String: [UInt8]] = [:]
        for number in 1...count {
            let name = String(format: "%08X%08X%08X", 1, 0, number)
            var segment = [UInt8](repeating: 0, count: 16 << 20)
            for index in stride(from: 0, to: segment.count, by: 97) { segment[index] = UInt8.random(in: 0...255, using: &random) }
            try Data(segment).write(to: URL(fileURLWithPath: "\(directory)/segment"))
            let pushed = try await runProgram(backupd, ["wal-push", "--config", config, "\(directory)/segment", name])
            #expect(pushed.status == 0, "\(pushed.standardError)")
            segments[name] = segment
        }
        try await body(directory, config, segments)
    }

    func fetch(_ config: String, _ name: String, in directory: String, prefetch: Int = 4) async throws -> (status: Int32, content: [UInt8]) {
        let destination = "\(directory)/data/pg_wal/RECOVERYXLOG"
        unlink(destination)
        let fetched = try await runProgram("/bin/sh", ["-c", "cd \(directory)/data && \(backupd) wal-fetch --config \(config) --prefetch \(prefetch) \(name) pg_wal/RECOVERYXLOG"])
        return (fetched.status, (try? Array(Data(contentsOf: URL(fileURLWithPath: destination)))) ?? [])
    }

    func spooled(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/data/pg_wal/osmose-prefetch")) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    @Test("Each fetch starts a prefetcher; the next segments come from the spool, identical; a spool file altered after its check is refused at hand-over and the segment fetched from the store instead")
    func prefetched() async throws {
        try await withStore(count: 6, test: "wal-fetch prefetch") { directory, config, segments in
            let names = segments.keys.sorted()
            let first = try await fetch(config, names[0], in: directory)
            #expect(first.status == 0 && first.content == segments[names[0]])
            try await waitUntil("the prefetcher to fill the spool", timeout: .seconds(120)) { spooled(directory) == Array(names[1...4]) }
            // Taken from the spool: it leaves it.
            let second = try await fetch(config, names[1], in: directory)
            #expect(second.status == 0 && second.content == segments[names[1]])
            #expect(!spooled(directory).contains(names[1]))
            // Altered in the spool (same size): refused at hand-over, fetched from the store.
            let tampered = "\(directory)/data/pg_wal/osmose-prefetch/\(names[2])"
            if FileManager.default.fileExists(atPath: tampered) {
                var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: tampered)))
                bytes[1000] ^= 0xFF
                try Data(bytes).write(to: URL(fileURLWithPath: tampered))
            }
            let third = try await fetch(config, names[2], in: directory)
            #expect(third.status == 0 && third.content == segments[names[2]])
            for name in names[3...] {
                let fetched = try await fetch(config, name, in: directory)
                #expect(fetched.status == 0 && fetched.content == segments[name], "\(name)")
            }
            let beyond = try await fetch(config, String(format: "%08X%08X%08X", 1, 0, 7), in: directory)
            #expect(beyond.status == 1, "not in the store: recovery ends there")
        }
    }

    @Test("A prefetching wal-fetch killed with SIGKILL mid-work (6 times) leaves only .partial files, which no fetch uses; every later fetch gives the segment as pushed", .tags(.crash), .skippedInFastRuns)
    func prefetcherKilled() async throws {
        try await withStore(count: 8, test: "wal-fetch prefetch crashes") { directory, config, segments in
            let names = segments.keys.sorted()
            let spool = "\(directory)/data/pg_wal/osmose-prefetch"
            var random = TestSeed.generator(test: "wal-fetch prefetch kills")
            var interrupted = 0
            var round = 0
            var window = 2_000
            while interrupted < 6 && round < 24 {
                try? FileManager.default.removeItem(atPath: spool)
                // The prefetcher of the segments after the first (the worker a fetch starts), run here to be killed.
                let worker = try BackgroundProcess(
                    backupd, ["wal-fetch", "--config", config, "--prefetch-worker", "--prefetch", "6", "--spool", spool, names[0], "-"])
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...window, using: &random)))
                worker.signal(SIGKILL)
                let status = try await worker.wait().status
                // Mid-work: killed before all six had their final name (after that it only waits for them to be taken).
                let complete = spooled(directory).filter { !$0.hasSuffix(".partial") }.count
                if status == 128 + SIGKILL && complete < 6 { interrupted += 1 } else { window = max(20, window * 3 / 4) }
                // Whatever has a final name is a checked, complete segment.
                for name in spooled(directory) where !name.hasSuffix(".partial") {
                    #expect(try Array(Data(contentsOf: URL(fileURLWithPath: "\(spool)/\(name)"))) == segments[name], "round \(round): \(name)")
                }
                // A .partial (cut short by the kill) is never handed over: the fetch takes the segment from the store.
                for name in spooled(directory) where name.hasSuffix(".partial") {
                    let segment = String(name.prefix(24))
                    let fetched = try await runProgram(
                        "/bin/sh", ["-c", "cd \(directory)/data && \(backupd) wal-fetch --config \(config) --prefetch 0 --spool \(spool) \(segment) pg_wal/RECOVERYXLOG"])
                    #expect(fetched.status == 0, "round \(round): \(fetched.standardError)")
                    #expect(try Array(Data(contentsOf: URL(fileURLWithPath: "\(directory)/data/pg_wal/RECOVERYXLOG"))) == segments[segment], "round \(round): \(segment)")
                }
                round += 1
            }
            #expect(interrupted == 6, "kills landed mid-prefetch: \(interrupted) in \(round) rounds")
            // The next run succeeds: every segment in order, through the default spool and its prefetchers.
            try? FileManager.default.removeItem(atPath: spool)
            for name in names {
                let fetched = try await fetch(config, name, in: directory)
                #expect(fetched.status == 0 && fetched.content == segments[name], "\(name)")
            }
        }
    }
}
