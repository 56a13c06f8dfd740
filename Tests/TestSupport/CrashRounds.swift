import Glibc
import Testing

/// How a crash test's kill loop went: the kills that landed mid-work, and the rounds
/// it took.
public struct CrashRounds: Sendable {
    /// Kills that interrupted work in progress, as the test's `landedMidWork` judged.
    public var landed = 0
    /// Runs started and killed (or that ended on their own before the kill).
    public var rounds = 0
}

/// Starts `program` again and again, each time killed with SIGKILL a random delay
/// (in milliseconds, from `delays`, drawn from the seeded `random`) after the run
/// shows its first progress, until `kills` kills have landed mid-work or
/// `maxRounds` rounds have run. The delay runs from the first progress, not from the
/// start: a start-up's length depends on the machine's load, and a window measured
/// from the start either missed the work (loaded) or let a quiet machine finish it
/// in one round.
///
/// - Parameters:
///   - progress: reads the work's state (the test's own query).
///   - isFinished: whether the work is done: the loop stops there.
///   - hasStarted: whether the run has made progress since `before`; polled every `poll`
///     (at most 60 s) before the delay starts.
///   - landedMidWork: whether a kill, from the state `before` the round to the state
///     `after` it, interrupted work in progress.
/// A run that ends with a status other than SIGKILL's must have succeeded (status 0),
/// else the test records an issue naming the round and the seed.
public func killAfterProgress<Progress: Sendable>(
    _ program: String, _ arguments: [String], kills: Int, maxRounds: Int, delays: Range<Int>, poll: Duration,
    random: inout SeededGenerator,
    progress: () async throws -> Progress,
    isFinished: (Progress) -> Bool,
    hasStarted: (_ before: Progress, _ now: Progress) -> Bool,
    landedMidWork: (_ before: Progress, _ after: Progress) -> Bool
) async throws -> CrashRounds {
    var crashes = CrashRounds()
    while crashes.landed < kills && crashes.rounds < maxRounds {
        let before = try await progress()
        guard !isFinished(before) else { break }
        let delay = Int.random(in: delays, using: &random)
        let daemon = try BackgroundProcess(program, arguments)
        let deadline = ContinuousClock.now + .seconds(60)
        while daemon.isRunning, ContinuousClock.now < deadline, !hasStarted(before, try await progress()) {
            try await Task.sleep(for: poll)
        }
        try await Task.sleep(for: .milliseconds(delay))
        daemon.signal(SIGKILL)
        let outcome = try await daemon.wait()
        let after = try await progress()
        crashes.rounds += 1
        guard outcome.status == 128 + SIGKILL else {
            #expect(outcome.status == 0, "round \(crashes.rounds), seed \(random.seed): \(outcome.standardError)")
            continue
        }
        if landedMidWork(before, after) { crashes.landed += 1 }
    }
    return crashes
}
