/// The suite's version, printed by every executable's `version` and recorded with
/// each migration applied.
public enum SuiteVersion {
    /// Semantic version of this build.
    public static let current = "0.1.0"
}
