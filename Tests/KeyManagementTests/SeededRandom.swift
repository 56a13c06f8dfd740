import Foundation

/// A random generator whose whole sequence follows from its seed (SplitMix64), so
/// that a failing run can be replayed: the seed is `OSMOSE_TEST_SEED` when set,
/// else drawn at random, and is printed either way.
struct SeededRandom: RandomNumberGenerator {
    /// The seed: rerun with `OSMOSE_TEST_SEED=<seed>` to draw the same sequence.
    let seed: UInt64
    private var state: UInt64

    /// A generator starting from `seed`.
    init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    /// The generator of test `name`: seeded from `OSMOSE_TEST_SEED`, else at random;
    /// prints the seed.
    static func forTest(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> SeededRandom {
        let seed = environment["OSMOSE_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: .min ... .max)
        print("\(name): seed \(seed) (replay with OSMOSE_TEST_SEED=\(seed))")
        return SeededRandom(seed: seed)
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
