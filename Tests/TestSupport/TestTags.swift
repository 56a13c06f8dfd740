import Foundation
public import Testing

extension Tag {
    /// Kills a real process (SIGKILL) many times and checks what survives: slow by nature.
    @Tag public static var crash: Self
    /// Runs a path many times or under load (tampering harness, fuzzing, concurrency).
    @Tag public static var stress: Self
}

/// How `scripts/test` runs the suite.
public enum TestRun {
    /// True under `scripts/test --fast` (`OSMOSE_TEST_FAST=1`): the inner loop, without
    /// crash and stress tests. CI always runs everything.
    public static let isFast = ProcessInfo.processInfo.environment["OSMOSE_TEST_FAST"] == "1"
}

extension Trait where Self == ConditionTrait {
    /// Skips the test under `scripts/test --fast`; give it to every test tagged
    /// ``Tag/crash`` or ``Tag/stress``.
    public static var skippedInFastRuns: Self {
        .disabled(if: TestRun.isFast, "scripts/test --fast skips crash and stress tests; CI runs them")
    }
}
