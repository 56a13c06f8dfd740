import Foundation

/// The shared state of checks run by `DispatchQueue.concurrentPerform` workers, each
/// claiming the next check and storing its outcome at that check's index (verify's
/// backups and WAL files, the store audit's WAL files).
///
/// `@unchecked Sendable`: `next` and `outcomes` are written under `lock` while the
/// workers run; `outcomes` is read only after `concurrentPerform` has returned, when
/// every worker has ended.
final class ClaimedResults<Outcome>: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private let count: Int
    private(set) var outcomes: [Outcome]

    /// `count` checks, each outcome `initial` until stored.
    init(count: Int, initial: Outcome) {
        self.count = count
        outcomes = Array(repeating: initial, count: count)
    }

    /// The index of the next unclaimed check, or nil when all are claimed.
    func claim() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < count else { return nil }
        next += 1
        return next - 1
    }

    /// Stores the outcome of the check at `index` (claimed by the caller).
    func store(_ index: Int, _ outcome: Outcome) {
        lock.lock()
        outcomes[index] = outcome
        lock.unlock()
    }
}
