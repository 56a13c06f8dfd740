import Foundation
import Synchronization

/// A serial executor that runs every job on one operating-system thread of its own.
///
/// A ``Connection`` actor runs on one of these, so libpq's blocking calls occupy
/// that thread and never a thread of Swift's cooperative pool.
final class DedicatedThreadExecutor: SerialExecutor, Sendable {
    private struct State {
        var jobs: [UnownedJob] = []
        var stopping = false
    }

    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)

    /// Starts the thread. `name` shows in debuggers and `top -H`.
    init(name: String) {
        let thread = Thread { [self] in self.run() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let accepted = state.withLock { state -> Bool in
            guard !state.stopping else { return false }
            state.jobs.append(job)
            return true
        }
        precondition(accepted, "a job was enqueued on a database connection after it was closed")
        wakeUp.signal()
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets the thread finish the jobs already queued, then exit.
    func shutdown() {
        state.withLock { $0.stopping = true }
        wakeUp.signal()
    }

    private func run() {
        while true {
            wakeUp.wait()
            let (batch, stopping) = state.withLock { state -> ([UnownedJob], Bool) in
                defer { state.jobs.removeAll(keepingCapacity: true) }
                return (state.jobs, state.stopping)
            }
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
            if stopping && batch.isEmpty { return }
            if stopping { wakeUp.signal() }
        }
    }
}
