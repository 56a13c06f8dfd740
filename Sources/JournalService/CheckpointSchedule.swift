/// When to issue the next checkpoint: within `within` of the tree growing (at most
/// one every `within / 2`, so each appended entry waits at most `within / 2` plus
/// the time of one batch), and every `reissue` when it did not grow. A pure state
/// machine, tested without I/O.
public struct CheckpointSchedule: Sendable, Hashable {
    /// What the daemon should do now.
    public enum Decision: Sendable, Hashable {
        /// Sign and store a checkpoint of the current tree.
        case issue
        /// Nothing is due for this long (the daemon may wake earlier for new intake).
        case wait(Duration)
    }

    /// The promised delay from growth to checkpoint.
    public let within: Duration
    /// The re-issue interval of an unchanged tree.
    public let reissue: Duration
    private var lastIssued: ContinuousClock.Instant?
    private var lastIssuedSize: UInt64?

    /// A schedule; `lastCheckpointSize` is the size the newest stored checkpoint covers.
    public init(within: Duration, reissue: Duration, lastCheckpointSize: UInt64?, now: ContinuousClock.Instant) {
        self.within = within
        self.reissue = reissue
        if lastCheckpointSize != nil {
            lastIssued = now
            lastIssuedSize = lastCheckpointSize
        }
    }

    /// The decision for a tree of `size` entries at `now`.
    public func decide(size: UInt64, now: ContinuousClock.Instant) -> Decision {
        guard let lastIssued, let lastIssuedSize else { return .issue }
        let due = lastIssued + (size == lastIssuedSize ? reissue : within / 2)
        return now >= due ? .issue : .wait(due - now)
    }

    /// Records that a checkpoint of `size` was issued at `now`.
    public mutating func issued(size: UInt64, at now: ContinuousClock.Instant) {
        lastIssued = now
        lastIssuedSize = size
    }
}
