import Foundation

/// A serial executor that runs every job on one operating-system thread of its own.
///
/// A ``Connection`` actor runs on one of these, so libpq's blocking calls occupy
/// that thread and never a thread of Swift's cooperative pool.
///
/// The queue is guarded by an `NSCondition` (a pthread mutex and condition
/// variable). It was a `Synchronization.Mutex` with a `DispatchSemaphore`: when
/// contended, that mutex is taken and released by the kernel (`FUTEX_LOCK_PI`), and
/// the semaphore hands over through libdispatch's own atomics, neither of which
/// ThreadSanitizer sees; it reported every contended enqueue as a race with the
/// thread taking the queue (issue 23). It sees pthread's mutex and condition.
final class DedicatedThreadExecutor: SerialExecutor, @unchecked Sendable {
    // @unchecked: `jobs` and `stopping` are read and written only with `condition` locked.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false

    /// Starts the thread. `name` shows in debuggers and `top -H`.
    init(name: String) {
        let thread = Thread { [self] in self.run() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        let accepted = !stopping
        if accepted {
            jobs.append(job)
            condition.signal()
        }
        condition.unlock()
        precondition(accepted, "a job was enqueued on a database connection after it was closed")
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets the thread finish the jobs already queued, then exit.
    func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            let stop = stopping
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
            if stop && batch.isEmpty { return }
        }
    }
}
