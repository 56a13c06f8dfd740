public import Journal
public import Store

/// The inclusion proofs of a patient's journal entries: the one function the
/// access pack gets its proofs from, made in bulk by ``Journal/JournalProver``.
public enum ConsultationProofs {
    /// A c2sp.org/tlog-proof@v1 proof for each of `sequences` (in their order), all
    /// against `checkpoint`, which must cover them; read in the caller's snapshot.
    /// - Throws: ``SubjectRequestError`` `.internalError` for a sequence the
    ///   checkpoint does not cover; ``Journal/JournalError`` when the stored tree is incomplete.
    public static func inclusionProofs(of sequences: [UInt64], against checkpoint: CheckpointRecord, on connection: isolated Connection) throws -> [String] {
        if let outside = sequences.first(where: { $0 >= checkpoint.treeSize }) {
            throw SubjectRequestError(.internalError, "entry \(outside) is not covered by checkpoint #\(checkpoint.id) (size \(checkpoint.treeSize))")
        }
        // The bulk prover reads each hash tile the proofs need once, whatever the order of
        // `sequences`; the proofs come out in sequence order and are put back in the caller's.
        let prover = JournalProver(checkpoint: checkpoint, on: connection)
        var proofs: [UInt64: String] = [:]
        proofs.reserveCapacity(sequences.count)
        try prover.inclusionProofs(.sequences(sequences)) { proof in
            proofs[proof.index] = JournalFormats.tlogProof(proof, checkpointNote: checkpoint.note)
        }
        return try sequences.map { sequence in
            guard let proof = proofs[sequence] else {
                throw SubjectRequestError(.internalError, "no inclusion proof was made for entry \(sequence)")
            }
            return proof
        }
    }
}
