// Benchmark helper for `scripts/bench backup` (never installed): what signing and
// checking add to osmose-backupd, measured in isolation on a real store.
//
//   osmose-backup-signing-bench generate-key FILE NAME
//       Writes a new backup-signing key to FILE (mode 0600) and prints its verifier key.
//   osmose-backup-signing-bench measure --store DIR --key FILE --verifier KEY [--rounds N]
//       On the store a real `osmose-backupd full` and `wal-push` wrote (signed with
//       FILE), repeats, N times each (default 50), the work the signatures add:
//       - push: what `wal-push` adds for one WAL file: the key read and parsed and
//         the statement signed, plus writing the signature (file synced; wal-push
//         syncs the directory once for it and the archive) less writing the
//         `.sha256` file it replaced, as wal-push wrote that before signing. Both
//         writes are measured in every round, in alternating order. The stored
//         file's SHA-256 it states is not counted: the archive writer computed it
//         as it wrote before signing too (unused then);
//       - fetch: what `wal-fetch` adds before it decrypts: the verifier key parsed,
//         the signature read, checked (Ed25519) and parsed (the segment's SHA-256
//         was compared after decrypting before signing too);
//       - full: what `full` adds once: the key read, the store audited twice (every
//         backup's and tombstone's signature and the chain: when the backup chooses
//         its parent, and the warning after it), the newest backup's small files
//         hashed (the archive's SHA-256 was computed before signing too), its
//         statement signed and written durably, and the signed head written to a
//         witness directory (which audits the store once more).
//       Scratch files go to a temporary directory, removed at the end; the store is
//       only read. Prints one line: `push MEDIAN_MS P99_MS fetch MEDIAN_MS P99_MS
//       full MEDIAN_MS P99_MS wal-files N backups N push-sign MEDIAN_MS P99_MS
//       push-signature-write MEDIAN_MS P99_MS push-digest-write MEDIAN_MS P99_MS`
//       (push: the per-round sum; its parts after); exits 1 when the store holds
//       nothing signed by the key, or a signature does not verify.
import Archive
import Backup
import Foundation
import Glibc
import Journal

setlocale(LC_CTYPE, "C.UTF-8")
let arguments = CommandLine.arguments
func option(_ name: String) -> String? { arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } }
/// Where scratch signatures go (removed on every exit).
let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-backup-signing-bench-\(getpid())").path
func fail(_ message: String, status: Int32 = 1) -> Never {
    try? FileManager.default.removeItem(atPath: scratch)
    FileHandle.standardError.write(Data("osmose-backup-signing-bench: \(message)\n".utf8))
    exit(status)
}
let usage = "usage: osmose-backup-signing-bench generate-key FILE NAME | measure --store DIR --key FILE --verifier KEY [--rounds N]"

if arguments.count == 4, arguments[1] == "generate-key" {
    do {
        let key = try NoteSignerKey.generate(name: arguments[3])
        let descriptor = open(arguments[2], O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else { fail("cannot create \(arguments[2]): \(String(cString: strerror(errno)))") }
        let text = Array((key.exposedEncoding() + "\n").utf8)
        guard write(descriptor, text, text.count) == text.count, fsync(descriptor) == 0 else { fail("cannot write \(arguments[2])") }
        close(descriptor)
        print(key.verifierKey.encoded)
        exit(0)
    } catch {
        fail("\(error)")
    }
}
guard arguments.count >= 2, arguments[1] == "measure", let store = option("--store"), let keyFile = option("--key"), let verifier = option("--verifier") else {
    fail(usage, status: 64)
}
guard let rounds = Int(option("--rounds") ?? "50"), rounds > 0 else { fail("--rounds takes a positive number", status: 64) }

/// Writes `bytes` to `path` as osmose-backupd writes a signature: a temporary file, synced, renamed, the directory synced.
func writeDurably(_ bytes: [UInt8], to path: String, syncingDirectory: Bool = true) {
    let temporary = path + ".tmp"
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o640)
    guard descriptor >= 0, write(descriptor, bytes, bytes.count) == bytes.count, fsync(descriptor) == 0, close(descriptor) == 0,
        rename(temporary, path) == 0
    else { fail("cannot write \(path): \(String(cString: strerror(errno)))") }
    guard syncingDirectory else { return }
    let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY)
    guard directory >= 0, fsync(directory) == 0 else { fail("cannot sync the directory of \(path)") }
    close(directory)
}

func loadSigner() -> BackupSigner {
    guard let text = FileManager.default.contents(atPath: keyFile) else { fail("cannot read \(keyFile)") }
    do {
        return try BackupSigner(keys: [NoteSignerKey(encoded: String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))])
    } catch {
        fail("\(keyFile): \(error)")
    }
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

/// Median and 99th percentile of `samples`, in milliseconds.
func summary(_ samples: [Double]) -> String {
    let sorted = samples.sorted()
    let p99 = sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.99).rounded(.up)) - 1)]
    return String(format: "%.3f %.3f", sorted[sorted.count / 2], p99)
}

try? FileManager.default.removeItem(atPath: scratch)
do {
    try FileManager.default.createDirectory(atPath: "\(scratch)/witness", withIntermediateDirectories: true)
} catch {
    fail("cannot create \(scratch): \(error)")
}

let trustOnce: BackupTrust
do {
    trustOnce = try BackupTrust(verifierKeys: [verifier], retired: [])
} catch {
    fail("--verifier: \(error)")
}
let archive = WALArchive(store: store)
let walNames = ((try? archive.names()) ?? []).filter { FileManager.default.fileExists(atPath: "\(store)/wal/\($0).sig") }
guard !walNames.isEmpty else { fail("\(store)/wal holds no signed WAL file") }
let audit = BackupCatalogue(store: store).audit(trust: trustOnce)
guard audit.failures.isEmpty else { fail("the store does not verify: \(audit.failures[0])") }
guard let newest = audit.trusted.last else { fail("\(store) holds no backup signed by the key") }
let clock = ContinuousClock()

// push: per WAL file, cycling through the store's.
var push: [Double] = []
var pushSign: [Double] = []
var signatureWrite: [Double] = []
var digestWrite: [Double] = []
for round in 0..<rounds {
    let name = walNames[round % walNames.count]
    let started = clock.now
    let signer = loadSigner()
    let statement: BackupStatement
    do {
        let note = String(decoding: FileManager.default.contents(atPath: "\(store)/wal/\(name).sig") ?? Data(), as: UTF8.self)
        // The same statement as wal-push's (its fields taken from the store's signature).
        statement = try BackupStatement.parse(SignedNote.text(of: note), file: name)
    } catch {
        fail("wal/\(name): \(error)")
    }
    guard statement.file("\(name).tar.zst.age") != nil, let digest = statement.value("sha256") else { fail("wal/\(name).sig does not cover its archive") }
    let signature: [UInt8]
    do {
        signature = Array(try signer.sign(statement).utf8)
    } catch {
        fail("signing: \(error)")
    }
    pushSign.append(milliseconds(clock.now - started))
    // As wal-push writes them: the file synced, the directory synced once later for the archive too.
    func timed(_ bytes: [UInt8], _ path: String) -> Double {
        let started = clock.now
        writeDurably(bytes, to: path, syncingDirectory: false)
        return milliseconds(clock.now - started)
    }
    let digestBytes = Array("\(digest)\n".utf8)
    if round % 2 == 0 {
        signatureWrite.append(timed(signature, "\(scratch)/\(name).sig"))
        digestWrite.append(timed(digestBytes, "\(scratch)/\(name).sha256"))
    } else {
        digestWrite.append(timed(digestBytes, "\(scratch)/\(name).sha256"))
        signatureWrite.append(timed(signature, "\(scratch)/\(name).sig"))
    }
    push.append(pushSign[round] + signatureWrite[round] - digestWrite[round])
}

// fetch: per WAL file, before decrypting.
var fetch: [Double] = []
for round in 0..<rounds {
    let name = walNames[round % walNames.count]
    let started = clock.now
    do {
        let trust = try BackupTrust(verifierKeys: [verifier], retired: [])
        guard try archive.authenticate(name, trust: trust)?.statement.value("sha256") != nil else { fail("wal/\(name): no segment digest signed") }
    } catch {
        fail("\(error)")
    }
    fetch.append(milliseconds(clock.now - started))
}

// full: once per backup.
var full: [Double] = []
let directory = "\(store)/base/\(newest.id)"
for _ in 0..<rounds {
    let started = clock.now
    let signer = loadSigner()
    let trust = trustOnce.adding(signer)
    let first = BackupCatalogue(store: store).audit(trust: BackupTrust(keys: trust.keys, acceptUnsigned: true))
    guard first.trusted.last?.id == newest.id else { fail("the audit lost the newest backup") }
    do {
        var hashed = 0
        for file in ["manifest.json.age", "summary.json", "tree.local.json"] where FileManager.default.fileExists(atPath: "\(directory)/\(file)") {
            hashed += Int(try FileBlocks.sha256(ofFile: "\(directory)/\(file)").size)
        }
        let note = String(decoding: FileManager.default.contents(atPath: "\(directory)/\(BackupCatalogue.signatureName)") ?? Data(), as: UTF8.self)
        let statement = try BackupStatement.parse(SignedNote.text(of: note), file: newest.id)
        writeDurably(Array(try signer.sign(statement).utf8), to: "\(scratch)/\(BackupCatalogue.signatureName)")
    } catch {
        fail("base/\(newest.id): \(error)")
    }
    guard BackupCatalogue(store: store).audit(trust: trust).failures.isEmpty else { fail("the store does not verify") }
    let failures = StoreHead.writeHead(store: store, signer: signer, trust: trust, into: ["\(scratch)/witness"])
    guard failures.isEmpty else { fail(failures.joined(separator: "; ")) }
    full.append(milliseconds(clock.now - started))
}

try? FileManager.default.removeItem(atPath: scratch)
print(
    "push \(summary(push)) fetch \(summary(fetch)) full \(summary(full)) wal-files \(walNames.count) backups \(audit.trusted.count)",
    "push-sign \(summary(pushSign)) push-signature-write \(summary(signatureWrite)) push-digest-write \(summary(digestWrite))")
