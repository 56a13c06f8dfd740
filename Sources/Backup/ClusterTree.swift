import Foundation

/// What a direct copy of the data directory learns of a file without reading it
/// (`lstat`): enough for an incremental to decide whether it can be left out.
struct ClusterFileState: Sendable, Equatable {
    /// Its size in bytes.
    var size: Int64
    /// Its modification time (`st_mtim`), nanoseconds since the epoch.
    var modifiedNanoseconds: Int64
    /// Its status-change time (`st_ctim`), nanoseconds since the epoch: set by the
    /// kernel on every write, truncation, rename, `chmod` or `utimensat`, and never
    /// settable by a user (only by changing the system clock).
    var changedNanoseconds: Int64
    /// Its inode number.
    var inode: UInt64
}

/// How an incremental of the cluster treats one file of the data directory.
enum ClusterFileDecision: Sendable, Equatable {
    /// Unchanged since the parent read it, proved without reading it: keep the
    /// parent's content reference.
    case unchanged
    /// The cheap test cannot prove it unchanged, but its size and modification time
    /// are the parent's: hash it, keep the reference if the content is the same,
    /// otherwise copy it.
    case compareChecksum
    /// Copy it (new, or its size or modification time changed).
    case copy
}

/// The rule an incremental of the cluster applies to each data file (docs/backup.md,
/// "Incrementals of the cluster: what the rule relies on"). A file is left out
/// unread only when its size, modification time, status-change time and inode are
/// those the parent recorded **and** that status-change time is more than
/// ``margin`` before the parent started: then nothing wrote to the file since
/// before the parent's copy began, so its content is the one the parent's tree
/// refers to. A file whose size and modification time are the parent's but which
/// fails that test (its status-change time moved, or falls within the parent's
/// run, or the clock went back) is hashed and compared; any other file is copied.
struct ClusterChangeRule: Sendable {
    /// How long before the parent's start a file's last change must be. Linux stamps
    /// files from a coarse clock (one tick, at most 10 ms, behind the real time); the
    /// margin covers that and small clock adjustments.
    static let margin: Int64 = 1_000_000_000

    /// When the parent backup started (before its `pg_backup_start`), nanoseconds since the epoch.
    let parentStartedNanoseconds: Int64
    /// The time now, nanoseconds since the epoch.
    let nowNanoseconds: Int64

    /// The decision for a file in `state`, which the parent recorded as `previous`
    /// (nil: the parent did not list it, or no parent tree is available).
    func decide(_ state: ClusterFileState, previous: SuiteTreeEntry?) -> ClusterFileDecision {
        guard let previous, previous.kind == "file", previous.sha256 != nil, previous.backup != nil, let recordedSize = previous.size else { return .copy }
        guard recordedSize == state.size, previous.modifiedNanoseconds == state.modifiedNanoseconds else { return .copy }
        // The clock went back since the parent started: no time comparison can be trusted.
        guard nowNanoseconds >= parentStartedNanoseconds else { return .compareChecksum }
        guard let recordedChange = previous.changedNanoseconds, recordedChange == state.changedNanoseconds, previous.inode == state.inode,
            state.changedNanoseconds < parentStartedNanoseconds - Self.margin
        else { return .compareChecksum }
        return .unchanged
    }
}
