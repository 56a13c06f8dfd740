public import Journal
public import Store

/// The inclusion proofs of a patient's journal entries: the one function the
/// access pack gets its proofs from, so that the bulk prover (issue 22) replaces
/// its body without other changes.
public enum ConsultationProofs {
    /// A c2sp.org/tlog-proof@v1 proof for each of `sequences` (in their order), all
    /// against `checkpoint`, which must cover them; read in the caller's snapshot.
    /// - Throws: ``SubjectRequestError`` `.internalError` for a sequence the
    ///   checkpoint does not cover; ``Journal/JournalError`` when the stored tree is incomplete.
    public static func inclusionProofs(of sequences: [UInt64], against checkpoint: CheckpointRecord, on connection: isolated Connection) throws -> [String] {
        if let outside = sequences.first(where: { $0 >= checkpoint.treeSize }) {
            throw SubjectRequestError(.internalError, "entry \(outside) is not covered by checkpoint #\(checkpoint.id) (size \(checkpoint.treeSize))")
        }
        // One reader for all of them: its tile cache serves the tiles shared by neighbouring entries.
        let reader = DatabaseTreeReader(connection: connection)
        return try sequences.map { sequence in
            JournalFormats.tlogProof(index: sequence, proof: try reader.inclusionProof(index: sequence, size: checkpoint.treeSize), checkpointNote: checkpoint.note)
        }
    }
}
