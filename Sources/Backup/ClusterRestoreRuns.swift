import Archive

/// How a restore reads one holder's archive: in runs, each starting at the zstd frame
/// of its first file (``ArchiveMember/frame``) and ending after its last, so that the
/// archive is decrypted and decompressed only where the files the cluster still
/// needs from it are. Pure: the plan is made from the holder's manifest, without I/O.
enum ClusterRestoreRuns {
    /// One reader's work: start at `frame` in `holder`'s archive, write `members`, stop after the last.
    struct Run: Equatable, Sendable {
        let holder: String
        /// Where the reader starts, in the decrypted stream (0: the archive's start).
        let frame: Int64
        /// The files to write, with the size and SHA-256 each must have.
        var members: [String: ArchiveMember]
        /// Their bytes (for ordering the runs, the largest first).
        var bytes: Int64
    }

    /// Unneeded bytes a run reads through rather than starting another run after them.
    static let readThroughLimit: Int64 = 32 << 20
    /// A run this large ends at the next frame boundary, so that the cores share the work.
    static let runBytesLimit: Int64 = 256 << 20

    /// The runs that read `wanted` (path → the size and SHA-256 the cluster list
    /// records) from `holder`'s archive, whose members its manifest lists (sorted by
    /// path: their frames give the order written). A run never starts inside a frame
    /// another run reads. An archive written before frames were recorded (a member
    /// without ``ArchiveMember/frame``) is one run from its start.
    /// - Throws: ``ArchiveError`` when a wanted file is not in the holder's manifest, or
    ///   a member's frame is negative.
    static func plan(holder: String, members: [ArchiveMember], wanted: [String: ArchiveMember]) throws -> [Run] {
        guard !wanted.isEmpty else { return [] }
        let listed = Set(members.map(\.path))
        if let missing = wanted.keys.filter({ !listed.contains($0) }).min() {
            throw ArchiveError("\(missing) is held by backup \(holder) according to the cluster list, but its manifest does not list it: restore refused")
        }
        if let bad = members.first(where: { ($0.frame ?? 0) < 0 }) {
            throw ArchiveError("the manifest of backup \(holder) gives \(bad.path) the frame \(bad.frame ?? 0), which is negative: restore refused")
        }
        guard members.allSatisfy({ $0.frame != nil }) else {
            return [Run(holder: holder, frame: 0, members: wanted, bytes: wanted.values.reduce(0) { $0 + $1.size })]
        }
        var runs: [Run] = []
        var current: Run?
        var lastFrame: Int64 = 0
        var skipped: Int64 = 0
        // The order written: by frame, and within a frame as listed (a reader started at
        // a frame reads all its members, whatever their order).
        let archiveOrder = members.enumerated().sorted { ($0.element.frame ?? 0, $0.offset) < ($1.element.frame ?? 0, $1.offset) }.map(\.element)
        for member in archiveOrder {
            guard let want = wanted[member.path], let frame = member.frame else {
                skipped += member.size
                continue
            }
            // Within the frame the run has reached, the run goes on; past it, only when
            // little unneeded lies between and the run is not yet large.
            if var run = current, frame == lastFrame || (skipped <= readThroughLimit && run.bytes < runBytesLimit) {
                run.members[member.path] = want
                run.bytes += want.size
                current = run
            } else {
                if let run = current { runs.append(run) }
                current = Run(holder: holder, frame: frame, members: [member.path: want], bytes: want.size)
            }
            lastFrame = frame
            skipped = 0
        }
        if let run = current { runs.append(run) }
        return runs
    }
}
