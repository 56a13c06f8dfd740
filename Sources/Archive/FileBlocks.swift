import Cryptography
import Foundation
import Glibc

/// Files read once, in 1 MiB blocks: archiving, hashing, comparing.
public enum FileBlocks {
    /// Reads the open file `descriptor` (named `path` in errors) to its end in 1 MiB
    /// blocks, handing each to `body`.
    /// - Returns: the number of bytes read.
    /// - Throws: ``ArchiveError`` naming `path` when a read fails; or what `body` throws.
    @discardableResult
    public static func readBlocks(_ descriptor: Int32, path: String, _ body: (ArraySlice<UInt8>) throws -> Void) throws -> Int64 {
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

extension FileBlocks {
    /// The size and SHA-256 (hex) of the file at `path`, read once in 1 MiB blocks;
    /// `block` sees each block too (e.g. to open the first one).
    /// - Throws: ``ArchiveError`` naming `path` when it cannot be opened or read; or what `block` throws.
    public static func sha256(ofFile path: String, block: (ArraySlice<UInt8>) throws -> Void = { _ in }) throws -> (size: Int64, sha256: String) {
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw ArchiveError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        var hasher = SHA256Hasher()
        let size = try readBlocks(input, path: path) { chunk in
            hasher.update(chunk)
            try block(chunk)
        }
        return (size, hexDigest(hasher.finalize()))
    }
}

/// A digest as lowercase hexadecimal, as manifests, summaries and digest files hold it.
public func hexDigest(_ digest: [UInt8]) -> String {
    // Once per member of an archive (tens of thousands a month): no String(format:) per byte.
    let digits = Array("0123456789abcdef".utf8)
    return String(unsafeUninitializedCapacity: digest.count * 2) { buffer in
        for (index, byte) in digest.enumerated() {
            buffer[2 * index] = digits[Int(byte >> 4)]
            buffer[2 * index + 1] = digits[Int(byte & 0x0F)]
        }
        return digest.count * 2
    }
}

/// Items handled in order by background threads: `add` blocks while more than
/// `maximumPending` units (bytes, say) wait; `finish` waits until all are handled.
/// `@unchecked Sendable`: every mutable field is read and written under `condition`.
package final class WorkQueue<Item>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [(Item, Int)] = []
    private var pending = 0
    private var closed = false
    private let maximumPending: Int
    private let done = DispatchGroup()

    /// Starts `threads` threads calling `handle` on each item added.
    package init(threads: Int, maximumPending: Int = Int.max, handle: @escaping @Sendable (Item) -> Void) {
        self.maximumPending = maximumPending
        for _ in 0..<max(1, threads) {
            done.enter()
            Thread { [self] in
                while let (item, weight) = next() {
                    handle(item)
                    condition.lock()
                    pending -= weight
                    condition.broadcast()
                    condition.unlock()
                }
                done.leave()
            }.start()
        }
    }

    private func next() -> (Item, Int)? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !closed { condition.wait() }
        return items.isEmpty ? nil : items.removeFirst()
    }

    /// Queues `item`, counting `weight` against `maximumPending` until it is handled.
    package func add(_ item: Item, weight: Int = 0) {
        condition.lock()
        while pending > maximumPending { condition.wait() }
        items.append((item, weight))
        pending += weight
        condition.broadcast()
        condition.unlock()
    }

    /// Lets the threads end once the queue is empty, and waits for them.
    package func finish() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
        done.wait()
    }
}

/// SHA-256 on a thread of its own, member after member: the caller hands over each
/// block (copied) and asks for the digest at the member's end. For base backups,
/// where hashing would otherwise sit on the thread that feeds the compressor, and
/// restores, where it would sit on the thread that writes.
/// `@unchecked Sendable`: its stored properties are constants (`state`, `queue`), each
/// safe by its own rule; `update` and `finalize` are called from one thread, the writer's.
final class BackgroundHasher: @unchecked Sendable {
    /// What the hashing thread works on and hands back (it holds no reference to the hasher object).
    /// `@unchecked Sendable`: `digests` is read and written under `ready`; `hasher` only by the queue's one thread.
    private final class State: @unchecked Sendable {
        let ready = NSCondition()
        var digests: [String] = []
        /// Touched only by the queue's one thread.
        var hasher = SHA256Hasher()
    }

    private let state = State()
    private let queue: WorkQueue<[UInt8]?>

    init(maximumPending: Int = 32 << 20) {
        queue = WorkQueue(threads: 1, maximumPending: maximumPending) { [state] item in
            // One thread: blocks arrive in order; nil ends a member.
            if let item {
                state.hasher.update(item)
                return
            }
            var finished = SHA256Hasher()
            swap(&finished, &state.hasher)
            let digest = hexDigest(finished.finalize())
            state.ready.lock()
            state.digests.append(digest)
            state.ready.broadcast()
            state.ready.unlock()
        }
    }

    /// Hands over the next block of the current member.
    func update(_ bytes: ArraySlice<UInt8>) { queue.add(Array(bytes), weight: bytes.count) }

    /// The current member's SHA-256 (hex), once every block is hashed.
    func finalize() -> String {
        queue.add(nil)
        state.ready.lock()
        defer { state.ready.unlock() }
        while state.digests.isEmpty { state.ready.wait() }
        return state.digests.removeFirst()
    }

    /// Stops the thread.
    func close() { queue.finish() }

    deinit { queue.finish() }
}
