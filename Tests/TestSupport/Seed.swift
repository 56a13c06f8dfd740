import Foundation

/// A small, fast pseudo-random generator with a 64-bit seed (SplitMix64), so that
/// a test's random choices can be replayed: the same seed gives the same sequence
/// on every machine. Not for cryptography. Foundation's `UUID.random(using:)` draws
/// reproducible UUIDs from it.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    /// The seed it started from, to print beside a failure.
    public let seed: UInt64
    private var state: UInt64

    /// A generator that starts from `seed`.
    public init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    /// `count` random bytes (test data: archive members, segments, plaintexts).
    public mutating func bytes(count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = next()
            for _ in 0..<min(8, count - index) {
                bytes[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return bytes
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }

    /// A second generator whose sequence does not overlap this one's in practice, for
    /// work split between tasks or threads (each takes its own, in a fixed order).
    public mutating func split() -> SeededGenerator {
        SeededGenerator(seed: next())
    }
}

/// The seed of a test's random choices: `OSMOSE_TEST_SEED` when set (to replay a
/// run), otherwise a fresh one. Either way it is printed with the test's name, so a
/// failed run can be replayed with `OSMOSE_TEST_SEED=<seed> scripts/test --filter <test>`.
public enum TestSeed {
    /// The environment variable that fixes the seed.
    public static let variable = "OSMOSE_TEST_SEED"

    /// The seed for `test`, printed.
    /// - Parameter test: the test's name, as printed beside the seed.
    public static func current(test: String) -> UInt64 {
        let fixed = ProcessInfo.processInfo.environment[variable].flatMap { UInt64($0) }
        let seed = fixed ?? UInt64.random(in: 0...UInt64.max)
        print("\(test): seed \(seed)\(fixed == nil ? "" : " (from \(variable))"); replay with \(variable)=\(seed)")
        return seed
    }

    /// A generator seeded for `test` (see ``current(test:)``).
    public static func generator(test: String) -> SeededGenerator {
        SeededGenerator(seed: current(test: test))
    }
}
