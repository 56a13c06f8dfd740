public import Store

/// Proofs over the stored journal, as text any RFC 9162 verifier reads. Run them
/// in one REPEATABLE READ transaction, so that the checkpoints and the tree are
/// read from the same snapshot while osmose-journald keeps appending.
public enum JournalProofs {
    /// A c2sp.org/tlog-proof@v1 proof that entry `sequence` is in the tree of
    /// checkpoint `id` (the latest when nil), with that checkpoint's note.
    /// - Throws: ``JournalError`` `.notFound` when there is no such checkpoint (or none
    ///   yet), `.invalidArgument` when the checkpoint does not cover the entry.
    public static func inclusion(of sequence: UInt64, checkpoint id: Int64?, on connection: isolated Connection) throws -> String {
        guard let record = try JournalDatabase.checkpoint(idOrLatest: id, on: connection) else { throw JournalError(.notFound, "no checkpoint yet") }
        guard sequence < record.treeSize else {
            throw JournalError(.invalidArgument, "entry \(sequence) is not covered by checkpoint #\(record.id) (size \(record.treeSize))")
        }
        let proof = try DatabaseTreeReader(connection: connection).inclusionProof(index: sequence, size: record.treeSize)
        return JournalFormats.tlogProof(index: sequence, proof: proof, checkpointNote: record.note)
    }

    /// The consistency proof from checkpoint `old` to checkpoint `new`, as the body
    /// of a C2SP tlog-witness add-checkpoint request.
    /// - Throws: ``JournalError`` `.notFound` for an unknown checkpoint id,
    ///   `.invalidArgument` when `old`'s tree is larger than `new`'s.
    public static func consistency(from old: Int64, to new: Int64, on connection: isolated Connection) throws -> String {
        let older = try JournalDatabase.checkpoint(id: old, on: connection)
        let newer = try JournalDatabase.checkpoint(id: new, on: connection)
        guard older.treeSize <= newer.treeSize else {
            throw JournalError(.invalidArgument, "checkpoint #\(old) (size \(older.treeSize)) is larger than #\(new) (size \(newer.treeSize))")
        }
        let proof =
            older.treeSize == 0 ? [] : try DatabaseTreeReader(connection: connection).consistencyProof(oldSize: older.treeSize, newSize: newer.treeSize)
        return JournalFormats.addCheckpointBody(oldSize: older.treeSize, proof: proof, checkpointNote: newer.note)
    }
}
