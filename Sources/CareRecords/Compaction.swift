public import Store

/// Rewrites the care tables after pseudonymisation so that the removed values
/// leave the data files too. An UPDATE leaves the old row version behind; VACUUM
/// prunes it but leaves its bytes in the page's free space, and the planner's
/// statistics (`pg_statistic`) keep sampled values of the columns, whose old
/// versions linger in turn. `VACUUM (FULL, ANALYZE)` of each table of the registry,
/// then `VACUUM FULL` of `pg_statistic`, writes new files without them. Each
/// rewrite locks its table exclusively: the care service waits for it (run it in a
/// quiet hour). The WAL written before, and backups taken before, keep the old
/// values (encrypted under the column keys of their day) until they are pruned.
public enum CareCompaction {
    /// What a compaction rewrote (or, for a dry run, would rewrite).
    public struct Report: Sendable {
        /// The tables and their size in bytes before.
        public let tables: [(name: String, bytesBefore: Int64)]
        /// Their size after (nil for a dry run).
        public let bytesAfter: [String: Int64]?
        /// Whether the statistics catalog was rewritten too (it needs a superuser).
        public let statisticsRewritten: Bool
    }

    /// Compacts the tables of `registry` (the care records' by default).
    /// - Parameters:
    ///   - dryRun: only report the tables and their sizes.
    /// - Throws: ``Store/StoreError`` (the role must own the tables; `pg_statistic` needs a superuser, else it is reported as not rewritten).
    public static func compact(registry: EncryptedColumnRegistry = .care, dryRun: Bool = false, on connection: Connection) async throws -> Report {
        func sizes() async throws -> [String: Int64] {
            var sizes: [String: Int64] = [:]
            for table in registry.tables {
                sizes[table] = try await connection.query("SELECT pg_total_relation_size($1::regclass) AS bytes", [table]).rows[0].int64("bytes")
            }
            return sizes
        }
        let before = try await sizes()
        let tables = registry.tables.map { ($0, before[$0] ?? 0) }
        let superuser = try await connection.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").rows[0].bool("rolsuper")
        guard !dryRun else { return Report(tables: tables, bytesAfter: nil, statisticsRewritten: false) }
        for table in registry.tables {
            let quoted = table.split(separator: ".").map { "\"\($0)\"" }.joined(separator: ".")
            try await connection.execute("VACUUM (FULL, ANALYZE) \(quoted)")
        }
        if superuser { try await connection.execute("VACUUM FULL pg_catalog.pg_statistic") }
        try await connection.execute("CHECKPOINT")
        return Report(tables: tables, bytesAfter: try await sizes(), statisticsRewritten: superuser)
    }
}
