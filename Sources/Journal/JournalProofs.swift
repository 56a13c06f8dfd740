public import Store

/// Proofs over the stored journal, as text any RFC 9162 verifier reads, computed by
/// ``JournalProver``. Run them in one REPEATABLE READ transaction, so that the
/// checkpoints and the tree are read from the same snapshot while osmose-journald
/// keeps appending.
public enum JournalProofs {
    /// A c2sp.org/tlog-proof@v1 proof that entry `sequence` is in the tree of
    /// checkpoint `id` (the latest when nil), with that checkpoint's note.
    /// - Throws: ``JournalError`` `.notFound` when there is no such checkpoint (or none
    ///   yet), `.invalidArgument` when the checkpoint does not cover the entry.
    public static func inclusion(of sequence: UInt64, checkpoint id: Int64?, on connection: isolated Connection) throws -> String {
        var text = ""
        _ = try inclusion(of: .sequences([sequence]), checkpoint: id, on: connection) { text = $0 }
        return text
    }

    /// The c2sp.org/tlog-proof@v1 proofs that the entries of `selection` are in the
    /// tree of checkpoint `id` (the latest when nil), one text per entry in sequence
    /// order, handed to `body` as they are built (the hash tiles are read once for all).
    /// - Returns: the checkpoint they are against.
    /// - Throws: ``JournalError`` `.notFound` when there is no such checkpoint (or none
    ///   yet), `.invalidArgument` when the checkpoint does not cover every entry.
    @discardableResult
    public static func inclusion(
        of selection: EntrySelection, checkpoint id: Int64?, on connection: isolated Connection, _ body: (String) throws -> Void
    ) throws -> CheckpointRecord {
        guard let record = try JournalDatabase.checkpoint(idOrLatest: id, on: connection) else { throw JournalError(.notFound, "no checkpoint yet") }
        if let last = selection.last, last >= record.treeSize {
            throw JournalError(.invalidArgument, "entry \(last) is not covered by checkpoint #\(record.id) (size \(record.treeSize))")
        }
        let note = Array(record.note.utf8)
        var text: [UInt8] = []
        try JournalProver(checkpoint: record, on: connection).inclusionProofs(selection) { proof in
            text.removeAll(keepingCapacity: true)
            JournalFormats.appendTlogProof(proof, checkpointNote: note, to: &text)
            try body(String(decoding: text, as: UTF8.self))
        }
        return record
    }

    /// The consistency proof from checkpoint `old` to checkpoint `new`, as the body
    /// of a C2SP tlog-witness add-checkpoint request.
    /// - Throws: ``JournalError`` `.notFound` for an unknown checkpoint id,
    ///   `.invalidArgument` when `old`'s tree is larger than `new`'s.
    public static func consistency(from old: Int64, to new: Int64, on connection: isolated Connection) throws -> String {
        var body = ""
        try consistencyChain([old, new], on: connection) { body = $0 }
        return body
    }

    /// The consistency proofs along checkpoints `ids` (each to the next), as bodies of
    /// C2SP tlog-witness add-checkpoint requests handed to `body` in order: one chain,
    /// each tile read at most once.
    /// - Throws: ``JournalError`` `.notFound` for an unknown checkpoint id,
    ///   `.invalidArgument` for fewer than two ids or a checkpoint larger than the next.
    public static func consistencyChain(_ ids: [Int64], on connection: isolated Connection, _ body: (String) throws -> Void) throws {
        guard ids.count >= 2 else { throw JournalError(.invalidArgument, "a consistency proof needs two checkpoints") }
        let records = try ids.map { try JournalDatabase.checkpoint(id: $0, on: connection) }
        try JournalProver.consistencyChain(records, on: connection) { link in
            try body(JournalFormats.addCheckpointBody(oldSize: link.old.treeSize, proof: link.proof.hashes, checkpointNote: link.new.note))
        }
    }
}
