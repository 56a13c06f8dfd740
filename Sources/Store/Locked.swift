import Foundation

/// A value that threads share, read and written only under a pthread mutex (through
/// `NSLock`). The project's lock, in place of `Synchronization.Mutex`.
///
/// Why not `Mutex`: on Linux a contended `Mutex` is taken and released by the kernel
/// (`FUTEX_LOCK_PI` and `FUTEX_UNLOCK_PI`, in the standard library's uninstrumented
/// slow path), so ThreadSanitizer never sees the hand-over and reports every access
/// the mutex guards as a race once two threads contend (issue 23: the intake
/// socket's client slots, every connection's job queue). ThreadSanitizer intercepts
/// pthread's mutex, so what this guards is checked, not hidden. The cost is one
/// allocation per `Locked` and an uncontended lock about as cheap as `Mutex`'s.
///
/// ```swift
/// private let served = Locked(0)
/// served.withLock { $0 += 1 }
/// ```
public final class Locked<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `value` is only touched inside `withLock`, with `lock` held.
    private let lock = NSLock()
    private var value: Value

    /// Guards `value`.
    public init(_ value: Value) { self.value = value }

    /// Runs `body` on the value with the lock held; `body` must not call `withLock`
    /// on the same `Locked` (the lock is not recursive).
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
