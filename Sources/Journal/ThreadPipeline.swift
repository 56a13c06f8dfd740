import Foundation

/// Overlaps reading with working: the calling thread (the connection's, which alone
/// may use libpq) reads chunk after chunk while a second thread consumes them (builds
/// their proofs, or decodes and verifies their rows), joined by a queue of a few
/// chunks, so that memory stays bounded and PostgreSQL, the reads and the hashing run
/// side by side. Used by ``JournalProver`` and ``DatabaseSnapshot``.
enum ThreadPipeline {
    /// Runs `produce` on the calling thread, handing each item it makes to `consume`
    /// on a thread of its own, in order; returns once `consume` has taken the last one.
    /// `consume` never runs concurrently with the caller's code after this returns.
    /// - Throws: the first error of either side (the consumer's first, if both fail:
    ///   a producer stopped by the consumer's failure reports that one).
    static func run<Item: Sendable>(
        depth: Int, name: String, produce: (_ push: (Item) throws -> Void) throws -> Void, consume: (Item) throws -> Void
    ) throws {
        try withoutActuallyEscaping(consume) { consume in
            let consumer = Consumer(consume)
            let queue = BoundedQueue<Item>(depth: depth)
            let finished = DispatchSemaphore(value: 0)
            let thread = Thread {
                while let item = queue.pop() {
                    guard queue.failure == nil else { continue }
                    do {
                        try consumer.take(item)
                    } catch {
                        queue.fail(error)
                    }
                }
                finished.signal()
            }
            thread.name = name
            thread.start()
            var producerError: (any Error)?
            do {
                try produce { item in
                    if let failure = queue.failure { throw failure }
                    queue.push(item)
                }
            } catch {
                producerError = error
            }
            queue.close()
            finished.wait()
            consumer.release()
            if let failure = queue.failure { throw failure }
            if let producerError { throw producerError }
        }
    }
}

/// The consuming closure, handed to the consuming thread.
private final class Consumer<Item>: @unchecked Sendable {
    // @unchecked: the closure runs on the consuming thread only, while the thread that
    // created it waits (ThreadPipeline.run joins the consuming thread before returning),
    // so it never runs concurrently with the code that captured its state.
    private var body: ((Item) throws -> Void)?

    init(_ body: @escaping (Item) throws -> Void) { self.body = body }

    func take(_ item: Item) throws { try body?(item) }

    /// Drops the closure, so that a non-escaping closure provably does not escape.
    func release() { body = nil }
}

/// A FIFO of at most `depth` items between two threads, which can be failed from either side.
private final class BoundedQueue<Item: Sendable>: @unchecked Sendable {
    // @unchecked: every mutable field is guarded by `condition`.
    private let condition = NSCondition()
    private let depth: Int
    private var items: [Item] = []
    private var closed = false
    private var error: (any Error)?

    init(depth: Int) { self.depth = max(1, depth) }

    var failure: (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        return error
    }

    func fail(_ error: any Error) {
        condition.lock()
        if self.error == nil { self.error = error }
        condition.broadcast()
        condition.unlock()
    }

    /// Adds an item, waiting while the queue is full (unless it has failed).
    func push(_ item: Item) {
        condition.lock()
        while items.count >= depth && error == nil { condition.wait() }
        items.append(item)
        condition.broadcast()
        condition.unlock()
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next item, waiting for one; nil once closed and empty.
    func pop() -> Item? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !closed { condition.wait() }
        guard !items.isEmpty else { return nil }
        condition.broadcast()
        return items.removeFirst()
    }
}
