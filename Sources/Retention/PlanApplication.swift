/// The workflow of applying one plan, as a value that says what to do next and is
/// told what was done: start the run, apply the next batch of items (one class at
/// a time, in the plan's order, never an item twice), issue the certificate once
/// every item has an outcome, then stop. A crashed run is resumed by building it
/// again from what the database recorded (the run, the items' outcomes, the
/// certificate): it continues exactly where the last committed batch ended.
public struct PlanApplication: Sendable, Hashable {
    /// What to do next.
    public enum Action: Sendable, Hashable {
        /// Record the run's start.
        case startRun
        /// Apply these items (all of one class), recording each outcome with the change.
        case apply([PlanItem])
        /// Every item has its outcome: write the certificate and finish the run.
        case issueCertificate
        /// The run is finished.
        case finished
    }

    /// Items per batch, per class: a batch is one transaction (pseudonymisations are
    /// heavier than session removals); a journal month and a subject request are each
    /// one batch of their own (one request per transaction).
    public struct BatchSizes: Sendable, Hashable {
        /// Per class.
        public var sizes: [DataClass: Int]

        /// The sizes used unless told otherwise.
        public static let standard = BatchSizes(sizes: [.journal: 1, .coldArchives: 1, .careRecords: 200, .subjectRequests: 1, .sessions: 1000])

        /// Sizes per class; 1 for a class not named.
        public init(sizes: [DataClass: Int]) { self.sizes = sizes }

        /// `careRecords` records per batch (the configuration's `retention.batch_size`), five times as many sessions, one journal item, one request.
        public static func records(_ careRecords: Int) -> BatchSizes {
            BatchSizes(sizes: [.journal: 1, .coldArchives: 1, .careRecords: careRecords, .subjectRequests: 1, .sessions: careRecords * 5])
        }

        func size(of dataClass: DataClass) -> Int { max(1, sizes[dataClass] ?? 1) }
    }

    private let items: [PlanItem]
    private let batchSizes: BatchSizes
    private var started: Bool
    private var recorded: Set<String>
    private var certified: Bool
    private var inFlight: [String]?

    /// The workflow of `plan` given what was recorded so far.
    /// - Parameters:
    ///   - plan: the plan (only its due items are applied; held items never are).
    ///   - runStarted: whether its run was recorded.
    ///   - recorded: the keys of the items whose outcome was recorded.
    ///   - certified: whether the certificate was issued (the run finished).
    ///   - batchSizes: items per batch.
    public init(plan: RetentionPlan, runStarted: Bool, recorded: Set<String>, certified: Bool, batchSizes: BatchSizes = .standard) {
        items = plan.items.sorted { ($0.dataClass, $0.key) < ($1.dataClass, $1.key) }
        self.batchSizes = batchSizes
        started = runStarted
        self.recorded = recorded
        self.certified = certified
    }

    /// The items without an outcome yet, in order.
    public var pending: [PlanItem] { items.filter { !recorded.contains($0.key) } }

    /// What to do next. Asking again before being told the outcome returns the same action.
    public mutating func next() -> Action {
        if certified { return .finished }
        guard started else { return .startRun }
        if let inFlight { return .apply(items.filter { inFlight.contains($0.key) }) }
        let waiting = pending
        guard let first = waiting.first else { return .issueCertificate }
        let batch = Array(waiting.prefix { $0.dataClass == first.dataClass }.prefix(batchSizes.size(of: first.dataClass)))
        inFlight = batch.map(\.key)
        return .apply(batch)
    }

    /// The run's start was recorded.
    public mutating func runStarted() { started = true }

    /// The outcomes of these items were recorded (committed with their changes).
    /// Keys that are not the batch in flight are refused: an outcome for an item
    /// the plan does not hold, or twice, is a programming error the caller must see.
    /// - Returns: false when `keys` is not exactly the batch in flight.
    @discardableResult
    public mutating func recorded(_ keys: [String]) -> Bool {
        guard let inFlight, Set(keys) == Set(inFlight), keys.allSatisfy({ !recorded.contains($0) }) else { return false }
        recorded.formUnion(keys)
        self.inFlight = nil
        return true
    }

    /// The batch in flight failed and was rolled back: it will be asked for again.
    public mutating func failed() { inFlight = nil }

    /// The certificate was issued and the run finished.
    public mutating func certificateIssued() { certified = true }
}
