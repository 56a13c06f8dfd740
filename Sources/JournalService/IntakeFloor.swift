/// Where the next batch may start scanning the intake: above ids taken more than
/// `settle` ago (no transaction stays open that long between taking an id and
/// committing, in this suite), and from the start every `sweep` to collect any
/// straggler. A pure value type, tested without I/O.
public struct IntakeFloor: Sendable {
    /// How long an inserting transaction may stay open after taking its id.
    public let settle: Duration
    /// How often a batch scans the whole intake.
    public let sweep: Duration
    private var taken: [(at: ContinuousClock.Instant, id: Int64)] = []
    private var lastSweep: ContinuousClock.Instant?

    /// A floor with the given delays.
    public init(settle: Duration = .seconds(10), sweep: Duration = .seconds(60)) {
        self.settle = settle
        self.sweep = sweep
    }

    /// The id the next batch scans above at `now` (0: the whole intake).
    public mutating func floor(at now: ContinuousClock.Instant) -> Int64 {
        guard let lastSweep, now - lastSweep < sweep else {
            lastSweep = now
            return 0
        }
        return taken.last(where: { now - $0.at >= settle })?.id ?? 0
    }

    /// Records that a batch took every visible id up to `id` at `now`.
    public mutating func took(upTo id: Int64, at now: ContinuousClock.Instant) {
        taken.append((now, id))
        if let settled = taken.lastIndex(where: { now - $0.at >= settle }), settled > 0 { taken.removeFirst(settled) }
    }
}
