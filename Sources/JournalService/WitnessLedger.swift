/// Which checkpoints each witness directory holds, and so which copies the next
/// checkpoint needs: the last one alone when a directory is up to date, the run it
/// missed otherwise (a directory that failed is retried at the next checkpoint). A
/// pure value type, tested without I/O; ``JournalSequencer`` reads and writes the
/// files.
public struct WitnessLedger: Sendable, Hashable {
    /// Checkpoints to append to one directory.
    public struct Copy: Sendable, Hashable {
        /// The directory's index, in the configured order.
        public let directory: Int
        /// The checkpoint ids to append, in order.
        public let ids: ClosedRange<Int64>

        /// A copy of checkpoints `ids` to directory `directory`.
        public init(directory: Int, ids: ClosedRange<Int64>) {
            self.directory = directory
            self.ids = ids
        }
    }

    /// Per directory, the id of the last checkpoint it holds (0: none).
    private var lastWritten: [Int64]

    /// A ledger for directories whose last notes are the checkpoints `lastNoteIDs`
    /// (nil for an empty directory, which then starts with the newest checkpoint
    /// only, not the whole history) in a journal of `checkpointCount` checkpoints.
    public init(lastNoteIDs: [Int64?], checkpointCount: Int64) {
        lastWritten = lastNoteIDs.map { $0 ?? max(0, checkpointCount - 1) }
    }

    /// The copies that bring every directory up to checkpoint `latest`.
    public func copies(upTo latest: Int64) -> [Copy] {
        lastWritten.enumerated().compactMap { directory, written in
            written < latest ? Copy(directory: directory, ids: (written + 1)...latest) : nil
        }
    }

    /// Records that `copy` was made.
    public mutating func copied(_ copy: Copy) {
        lastWritten[copy.directory] = max(lastWritten[copy.directory], copy.ids.upperBound)
    }
}
