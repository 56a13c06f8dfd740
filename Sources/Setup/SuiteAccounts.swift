/// The suite's system users and the database roles they log in as, by peer
/// authentication on PostgreSQL's local socket (pg_ident.conf's map "osmose",
/// written by osmose-setup from `peerMapLines`). The system users themselves come
/// from packaging/sysusers.conf; a test keeps the two lists the same.
public enum SuiteAccounts {
    /// The map's name in pg_ident.conf and in pg_hba.conf's `map=` option.
    public static let mapName = "osmose"

    /// The role that owns the database and runs the migrations.
    public static let ownerRole = "osmose_owner"

    /// Each daemon's system user and its role.
    public static let daemons: [(user: String, role: String)] = [
        ("osmose-migrate", ownerRole),
        ("osmose-care", "osmose_care"),
        ("osmose-journald", "osmose_journald"),
        ("osmose-keyd", "osmose_keyd"),
        ("osmose-backupd", "osmose_backup"),
        ("osmose-retentiond", "osmose_retention"),
        ("osmose-dsard", "osmose_dsar"),
        ("osmose-console", "osmose_console"),
    ]

    /// Every role of the suite: the daemons', and the security officer's read-only one.
    public static var roles: [String] { daemons.map(\.role) + ["osmose_auditor"] }

    /// The map's lines (`map system-user role`), in the order they are written:
    /// - postgres stays the superuser it is, and acts as the owner for the restore
    ///   drill (which runs as postgres and journals its outcome);
    /// - postgres runs archive_command (osmose-backupd wal-push) as the backup role;
    /// - each daemon's user logs in as its own role;
    /// - root (osmosectl, run by the sysadmin) as any of the suite's roles.
    public static var peerMapLines: [String] {
        var pairs: [(String, String)] = [("postgres", "postgres"), ("postgres", ownerRole), ("postgres", "osmose_backup")]
        pairs += daemons.map { ($0.user, $0.role) }
        pairs += roles.map { ("root", $0) }
        return pairs.map { line(user: $0.0, role: $0.1) }
    }

    /// One pg_ident.conf line of the map.
    static func line(user: String, role: String) -> String {
        "\(mapName)  \(user.padding(toLength: max(18, user.count), withPad: " ", startingAt: 0)) \(role)"
    }
}
