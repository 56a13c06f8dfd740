internal import CGlibcExtras
import Cryptography
import Foundation
import Glibc

/// Settings for processes that stream gigabytes through buffers of about a megabyte
/// (backups, restores, verification).
public enum BulkIO {
    /// glibc serves allocations of 128 KiB and more with mmap and returns freed heap
    /// to the kernel eagerly; every megabyte buffer of a stream then costs page faults
    /// and zeroing (measured: half of `backup verify`'s time went to the kernel).
    /// Keeping such buffers on the heap removes that. Called once at the start of
    /// the backup commands; memory stays bounded by the largest live buffers.
    public static func tuneAllocator() {
        _ = mallopt(M_MMAP_THRESHOLD, 64 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 256 << 20)
    }

    /// Reads the open file `descriptor` (named `path` in errors) to its end in 1 MiB
    /// blocks, handing each to `body`.
    /// - Returns: the number of bytes read.
    @discardableResult
    static func readBlocks(_ descriptor: Int32, path: String, _ body: (ArraySlice<UInt8>) throws -> Void) throws -> Int64 {
        var block = [UInt8](repeating: 0, count: 1 << 20)
        var total: Int64 = 0
        while true {
            let count = block.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw ArchiveError("reading \(path) failed: \(String(cString: strerror(errno)))") }
            if count == 0 { return total }
            total += Int64(count)
            try body(block[0..<count])
        }
    }
}

/// Writes files on background threads while the caller produces their content,
/// and syncs each before closing it (a restore decrypts, decompresses and hashes
/// on its own thread; the kernel's share of writing — page cache, allocation,
/// writeback — runs beside it). Each file goes
/// to one lane, so its blocks are written in order; lanes run in parallel. The
/// caller blocks when a lane holds more than `maximumPending` bytes.
final class ParallelFileWriter: @unchecked Sendable {
    struct Handle {
        let descriptor: Int32
        let lane: Int
        let path: String
    }

    private enum Job {
        case write(Int32, [UInt8], String)
        case close(Int32, String)
    }

    private final class Lane: @unchecked Sendable {
        let condition = NSCondition()
        var jobs: [Job] = []
        var pendingBytes = 0
        var finished = false
    }

    private let lanes: [Lane]
    private let maximumPending: Int
    private let done = DispatchGroup()
    private let failureLock = NSLock()
    private var failure: String?
    private var nextLane = 0

    init(lanes count: Int, maximumPending: Int = 4 << 20) {
        lanes = (0..<max(1, count)).map { _ in Lane() }
        self.maximumPending = maximumPending
        for lane in lanes {
            done.enter()
            let thread = Thread { [self] in
                run(lane)
                done.leave()
            }
            thread.start()
        }
    }

    private var firstFailure: String? {
        failureLock.lock()
        defer { failureLock.unlock() }
        return failure
    }

    private func fail(_ message: String) {
        failureLock.lock()
        if failure == nil { failure = message }
        failureLock.unlock()
    }

    private func run(_ lane: Lane) {
        var unflushed: [Int32: Int] = [:]
        while true {
            lane.condition.lock()
            while lane.jobs.isEmpty && !lane.finished { lane.condition.wait() }
            if lane.jobs.isEmpty {
                lane.condition.unlock()
                return
            }
            let job = lane.jobs.removeFirst()
            lane.condition.unlock()
            var released = 0
            switch job {
            case .write(let descriptor, let bytes, let path):
                released = bytes.count
                if firstFailure == nil {
                    var offset = 0
                    while offset < bytes.count {
                        let count = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
                        if count < 0 && errno == EINTR { continue }
                        guard count > 0 else {
                            fail("writing \(path) failed: \(String(cString: strerror(errno)))")
                            break
                        }
                        offset += count
                    }
                    unflushed[descriptor, default: 0] += bytes.count
                    if unflushed[descriptor, default: 0] >= 32 << 20 {
                        // Writeback starts every 32 MiB, beside the rest of the restore, so that the
                        // final syncfs finds little left to wait for.
                        _ = sync_file_range(descriptor, 0, 0, UInt32(SYNC_FILE_RANGE_WRITE))
                        unflushed[descriptor] = 0
                    }
                }
            case .close(let descriptor, let path):
                // Durable before the restore reports success (on the lane's thread, beside the rest).
                if firstFailure == nil && fsync(descriptor) != 0 { fail("syncing \(path) failed: \(String(cString: strerror(errno)))") }
                unflushed[descriptor] = nil
                Glibc.close(descriptor)
            }
            lane.condition.lock()
            lane.pendingBytes -= released
            lane.condition.broadcast()
            lane.condition.unlock()
        }
    }

    private func enqueue(_ job: Job, bytes: Int, on lane: Lane) throws {
        lane.condition.lock()
        while lane.pendingBytes > maximumPending && firstFailure == nil { lane.condition.wait() }
        lane.jobs.append(job)
        lane.pendingBytes += bytes
        lane.condition.broadcast()
        lane.condition.unlock()
        if let failure = firstFailure { throw ArchiveError(failure) }
    }

    /// Creates `path` (which must not exist) for writing.
    func open(_ path: String, mode: mode_t) throws -> Handle {
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw ArchiveError("cannot create \(path): \(String(cString: strerror(errno)))") }
        nextLane = (nextLane + 1) % lanes.count
        return Handle(descriptor: descriptor, lane: nextLane, path: path)
    }

    /// Queues `bytes` (copied) for `handle`'s file.
    func write(_ handle: Handle, _ bytes: ArraySlice<UInt8>) throws {
        try enqueue(.write(handle.descriptor, Array(bytes), handle.path), bytes: bytes.count, on: lanes[handle.lane])
    }

    /// Queues the syncing and closing of `handle`'s file after its writes.
    func close(_ handle: Handle) throws {
        try enqueue(.close(handle.descriptor, handle.path), bytes: 0, on: lanes[handle.lane])
    }

    /// Waits until every queued write is done.
    /// - Throws: ``ArchiveError`` naming the first write that failed.
    func finish() throws {
        for lane in lanes {
            lane.condition.lock()
            lane.finished = true
            lane.condition.broadcast()
            lane.condition.unlock()
        }
        done.wait()
        if let failure = firstFailure { throw ArchiveError(failure) }
    }
}

/// SHA-256 on a thread of its own, member after member: the caller hands over each
/// block (copied) and asks for the digest at the member's end. For base backups,
/// where hashing would otherwise sit on the thread that feeds the compressor.
final class BackgroundHasher: @unchecked Sendable {
    private let condition = NSCondition()
    /// Blocks to hash; nil ends a member.
    private var queue: [[UInt8]?] = []
    private var pendingBytes = 0
    private var digests: [String] = []
    private var closed = false
    private let done = DispatchGroup()
    private let maximumPending: Int

    init(maximumPending: Int = 32 << 20) {
        self.maximumPending = maximumPending
        done.enter()
        Thread { [self] in
            run()
            done.leave()
        }.start()
    }

    private func run() {
        var hasher = SHA256Hasher()
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                return
            }
            let item = queue.removeFirst()
            condition.unlock()
            var digest: String?
            if let item {
                hasher.update(item)
            } else {
                let finished = hasher
                hasher = SHA256Hasher()
                digest = finished.finalize().map { String(format: "%02x", $0) }.joined()
            }
            condition.lock()
            pendingBytes -= item?.count ?? 0
            if let digest { digests.append(digest) }
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Hands over the next block of the current member.
    func update(_ bytes: ArraySlice<UInt8>) {
        condition.lock()
        while pendingBytes > maximumPending { condition.wait() }
        queue.append(Array(bytes))
        pendingBytes += bytes.count
        condition.broadcast()
        condition.unlock()
    }

    /// The current member's SHA-256 (hex), once every block is hashed.
    func finalize() -> String {
        condition.lock()
        queue.append(nil)
        condition.broadcast()
        while digests.isEmpty { condition.wait() }
        let digest = digests.removeFirst()
        condition.unlock()
        return digest
    }

    /// Stops the thread.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
        done.wait()
    }
}
