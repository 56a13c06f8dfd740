import Foundation
/// The settings every Osmose executable reads from one file
/// (`/etc/osmose/osmose.yaml`, or the path in `$OSMOSE_CONFIG` or `--config`).
///
/// See `docs/configuration.md` for every key. Unknown keys are refused so that a
/// typo never silently falls back to a default.
public struct SuiteConfiguration: Hashable, Sendable {
    /// Where the file is looked for when neither `--config` nor `$OSMOSE_CONFIG` names one.
    public static let defaultPath = "/etc/osmose/osmose.yaml"

    /// How to reach PostgreSQL.
    public struct Database: Hashable, Sendable {
        /// A libpq connection string; empty means libpq's environment (`PGHOST`, `PGSERVICE`…).
        public var connection: String
        /// The most connections each process opens.
        public var poolSize: Int
    }

    /// Log output.
    public struct Logging: Hashable, Sendable {
        /// The least severe level written: trace, debug, info, notice, warning, error or critical.
        public var level: String
    }

    /// Filesystem locations.
    public struct Paths: Hashable, Sendable {
        /// The daemons' state directory (witness checkpoints, archives, staging).
        public var state: String
        /// The policy files' directory.
        public var policies: String
    }

    /// The care service (`osmose-care`).
    public struct Care: Hashable, Sendable {
        /// `HOST:PORT` on loopback, or `unix:/path` for a Unix socket behind the reverse proxy.
        public var listen: String
        /// With `listen: unix:/path`: the group the socket is given to, 0660 (the
        /// reverse proxy's user is in it); nil leaves it to the daemon's user alone.
        public var socketGroup: String? = nil
        /// A libpq connection string for the care role; empty uses `database.connection`.
        public var database: String
        /// The master key file when no `master-key` systemd credential is passed.
        public var masterKeyFile: String?
        /// The access-control policy; default `<paths.policies>/access.yaml`.
        public var accessPolicy: String?
        /// Sessions end after this long unused.
        public var sessionIdle: Duration
        /// Sessions end this long after login.
        public var sessionLifetime: Duration
        /// log2 of scrypt's N for password hashes.
        public var passwordCost: Int
        /// Failed logins in a row before an account locks.
        public var maximumLoginFailures: Int
        /// How long an account stays locked.
        public var lockout: Duration
        /// Trust `X-Forwarded-For` from the reverse proxy: a peer among ``trustedProxies``, or any peer on the Unix socket.
        public var trustProxy: Bool
        /// The IP addresses of the reverse proxies whose `X-Forwarded-For` is honoured (default loopback: 127.0.0.1 and ::1).
        public var trustedProxies: [String]
        /// Largest request body, in bytes.
        public var maximumBodyBytes: Int
    }

    /// Backups (`osmose-backupd`).
    public struct Backup: Hashable, Sendable {
        /// The backup store: a local directory (absolute path).
        public var store: String
        /// The age recipients (`age1…`, or all hybrid post-quantum `age1pq1…`) backups are encrypted to. The backup host holds
        /// only these; the identities stay offline.
        public var recipients: [String]
        /// An age identity file, only where restores and verifications run.
        public var identityFile: String?
        /// A libpq connection string for base backups (a role with REPLICATION); empty uses `database.connection`.
        public var database: String
        /// Copy locations (mounted remote paths) that mirror the store, each file verified after writing.
        public var copies: [String] = []
        /// Further directories of the suite's files to back up (e.g. cold archives),
        /// beside the configuration, the policies and the witness directories.
        public var fileTrees: [String] = []
        /// Where osmose-backupd keeps the store's signed head (`backup-head.sig`), which
        /// verify, restore and drill compare with the store to catch a rollback: outside
        /// the store, on other storage. `nil` (not set): `journal.witness_directories`.
        public var headDirectories: [String]? = nil
        /// The cluster's data directory, when full backups copy it directly (between
        /// pg_backup_start and pg_backup_stop) rather than through pg_basebackup.
        public var dataDirectory: String?
        /// Backup-signing key files, read when no `backup-signing-key…` systemd
        /// credential is passed (PostgreSQL's archive_command runs outside
        /// osmose-backupd's units).
        public var signingKeyFiles: [String] = []
        /// The backup-signing verifier keys whose signatures are accepted (C2SP note
        /// verifier-key text), on every machine that verifies or restores: never read from the store.
        public var verifierKeys: [String] = []
        /// A retired backup-signing key: accepted alone only for what it signed before `retired`.
        public struct RetiredVerifierKey: Hashable, Sendable {
            /// The verifier key.
            public var key: String
            /// When osmose-keyd retired it (RFC 3339 UTC, as `osmosectl keys status` prints it).
            public var retired: String

            /// A retired key.
            public init(key: String, retired: String) {
                self.key = key
                self.retired = retired
            }
        }
        /// Retired backup-signing keys.
        public var retiredVerifierKeys: [RetiredVerifierKey] = []
    }

    /// The key daemon (`osmose-keyd`) and the sysadmin's key commands.
    public struct Keys: Hashable, Sendable {
        /// A libpq connection string for the osmose_keyd role; empty uses `database.connection`.
        public var database: String
        /// The master key file when no `master-key` systemd credential is passed.
        public var masterKeyFile: String?
        /// The key policy; default `<paths.policies>/keys.yaml`.
        public var policy: String?
    }

    /// The retention daemon (`osmose-retentiond`) and the DPO's retention commands.
    public struct Retention: Hashable, Sendable {
        /// A libpq connection string for the osmose_retention role; empty uses `database.connection`.
        public var database: String
        /// The master key file when no `master-key` systemd credential is passed (dates
        /// of care are encrypted; pseudonyms are computed under a data key).
        public var masterKeyFile: String?
        /// The retention policy; default `<paths.policies>/retention.yaml`.
        public var policy: String?
        /// Care records pseudonymised per transaction (a crash loses at most one batch's work).
        public var batchSize: Int = 200
    }

    /// The journal daemon (`osmose-journald`) and the security officer's tools.
    public struct Journal: Hashable, Sendable {
        /// A program allowed to submit events on the local socket, and the source name its events carry.
        public struct SocketPeer: Hashable, Sendable {
            /// The peer's user id (SO_PEERCRED).
            public var uid: UInt32
            /// The `source` recorded for its events.
            public var source: String

            /// A peer.
            public init(uid: UInt32, source: String) {
                self.uid = uid
                self.source = source
            }
        }

        /// The log's origin and signing-key name, e.g. `journal.chu-exemple.fr`.
        public var origin: String
        /// A libpq connection string for the journald role; empty uses `database.connection`.
        public var database: String
        /// Signing key files (`signing_key_file`, then `signing_key_files`), read when no
        /// `journal-signing-key…` systemd credential is passed.
        public var signingKeyFiles: [String]
        /// The log's verifier keys (C2SP note verifier-key text: `verifier_key`, then
        /// `verifier_keys`), every one the log has signed with, for `osmosectl journal verify`.
        public var verifierKeys: [String]
        /// A checkpoint covers every appended entry within this delay.
        public var checkpointWithin: Duration
        /// A checkpoint is re-issued this often when the tree did not grow.
        public var checkpointReissue: Duration
        /// Intake rows moved per transaction.
        public var batchSize: Int
        /// Directories outside the database that receive a copy of every checkpoint.
        public var witnessDirectories: [String]
        /// `unix:/path` to listen on when not socket-activated; empty for none.
        public var socket: String
        /// Who may submit events on the socket.
        public var socketPeers: [SocketPeer]
        /// The largest frame accepted on the socket, in bytes.
        public var maximumFrameBytes: Int
    }

    /// Cold archives of journal months (`osmosectl journal archive`, osmose-retentiond).
    public struct Archives: Hashable, Sendable {
        /// The archive directories (cold storage mounts, absolute paths): every archive
        /// is copied to each and read back. They must exist: a missing mount is an error.
        public var directories: [String]
        /// The age recipients (`age1…`, or all hybrid post-quantum `age1pq1…`) archives
        /// are encrypted to. The host holds only these; the identities stay offline.
        public var recipients: [String]
        /// An age identity file, only where archives are read back by people (`journal verify --archive`).
        public var identityFile: String?
    }

    /// Data-subject requests (`osmose-dsard` and the DPO's `osmosectl dsar`).
    public struct SubjectRequests: Hashable, Sendable {
        /// Whether the controller is a public body (its care records are kept for a
        /// task in the public interest, GDPR art. 6(1)(e)) or a private one (art. 6(1)(b)):
        /// it decides whether portability is owed (art. 20(3)).
        public enum Controller: String, Hashable, Sendable {
            case `public`, `private`
        }

        /// A libpq connection string for the osmose_dsar role; empty uses `database.connection`.
        public var database: String
        /// The master key file when no `master-key` systemd credential is passed.
        public var masterKeyFile: String?
        /// The controller's time zone, in which deadlines fall on calendar days (IANA name).
        public var timeZone: String
        /// The controller's status.
        public var controller: Controller
        /// A request is reported as nearing its deadline this many days before it.
        public var warnDays: Int
        /// How often osmose-dsard checks deadlines and reports restriction overrides.
        public var checkInterval: Duration
        /// A sendmail-compatible program and its arguments (the message, with its
        /// headers, on standard input); empty for no mail.
        public var mailCommand: [String]
        /// Who receives the reports.
        public var mailTo: [String]
        /// The reports' sender.
        public var mailFrom: String
        /// The controller's name, printed at the head of access packs.
        public var establishment: String
    }

    /// The staff console (`osmose-console`).
    public struct Console: Hashable, Sendable {
        /// `HOST:PORT` on loopback, or `unix:/path` for a Unix socket behind the reverse proxy.
        public var listen: String
        /// With `listen: unix:/path`: the group the socket is given to, 0660 (the
        /// reverse proxy's user is in it); nil leaves it to the daemon's user alone.
        public var socketGroup: String? = nil
        /// A libpq connection string for the osmose_console role; empty uses `database.connection`.
        public var database: String
        /// The console key (32 bytes, seals the TOTP seeds) when no `console-key` systemd credential is passed.
        public var keyFile: String?
        /// Sessions end after this long unused.
        public var sessionIdle: Duration
        /// Sessions end this long after sign-in.
        public var sessionLifetime: Duration
        /// log2 of scrypt's N for staff passwords.
        public var passwordCost: Int
        /// Failed sign-in steps in a row before an account locks.
        public var maximumLoginFailures: Int
        /// How long an account stays locked.
        public var lockout: Duration
        /// Trust `X-Forwarded-For` from a local reverse proxy.
        public var trustProxy: Bool
        /// The systemd units whose state the sysadmin's health page shows.
        public var units: [String]
    }

    /// Database settings.
    public var database: Database
    /// Logging settings.
    public var logging: Logging
    /// Paths.
    public var paths: Paths
    /// Care-service settings.
    public var care: Care
    /// Journal settings.
    public var journal: Journal
    /// Key daemon settings.
    public var keys: Keys
    /// Backup settings.
    public var backup: Backup
    /// Retention settings.
    public var retention = Retention(database: "", masterKeyFile: nil, policy: nil)
    /// Cold archive settings.
    public var archives: Archives = Archives(directories: [], recipients: [], identityFile: nil)
    /// Subject-request settings.
    public var subjectRequests: SubjectRequests = SuiteConfiguration.defaultSubjectRequests

    /// The subject-request settings' defaults.
    public static let defaultSubjectRequests = SubjectRequests(
        database: "", masterKeyFile: nil, timeZone: "Europe/Paris", controller: .public, warnDays: 3, checkInterval: .seconds(86400), mailCommand: [],
        mailTo: [], mailFrom: "osmose-dsard@localhost", establishment: "Établissement de santé")
    /// Console settings.
    public var console: Console = Console(
        listen: "127.0.0.1:8090", database: "", keyFile: nil, sessionIdle: .seconds(900), sessionLifetime: .seconds(28800), passwordCost: 17,
        maximumLoginFailures: 5, lockout: .seconds(900), trustProxy: false,
        units: [
            "osmose-care.service", "osmose-journald.service", "osmose-journald.socket", "osmose-keyd.timer", "osmose-backupd-full.timer",
            "osmose-backupd-incremental.timer", "osmose-backup-verify.timer", "osmose-backup-drill.timer", "osmose-console.service",
        ])

    /// Every setting at its default.
    public static let defaults = SuiteConfiguration(
        database: Database(connection: "", poolSize: 8),
        logging: Logging(level: "info"),
        paths: Paths(state: "/var/lib/osmose", policies: "/etc/osmose/policies"),
        care: Care(
            listen: "127.0.0.1:8080", database: "", masterKeyFile: nil, accessPolicy: nil, sessionIdle: .seconds(1800),
            sessionLifetime: .seconds(43200), passwordCost: 17, maximumLoginFailures: 5, lockout: .seconds(900), trustProxy: false,
            trustedProxies: ["127.0.0.1", "::1"], maximumBodyBytes: 65536),
        journal: Journal(
            origin: "journal.osmose.invalid", database: "", signingKeyFiles: [], verifierKeys: [], checkpointWithin: .seconds(1),
            checkpointReissue: .seconds(60), batchSize: 5000, witnessDirectories: [], socket: "", socketPeers: [], maximumFrameBytes: 65536),
        keys: Keys(database: "", masterKeyFile: nil, policy: nil),
        backup: Backup(store: "/var/lib/osmose-backupd/store", recipients: [], identityFile: nil, database: ""))

    /// Reads and validates the file at `path`.
    /// - Throws: ``ConfigurationError`` with the file, line and reason.
    public static func load(path: String) throws -> SuiteConfiguration {
        try parse(SettingsDocument(contentsOf: path))
    }

    /// Validates an already parsed document.
    public static func parse(_ document: SettingsDocument) throws -> SuiteConfiguration {
        var configuration = defaults
        let root = try document.root(allowedKeys: ["database", "logging", "paths", "care", "journal", "keys", "backup", "retention", "archives", "dsar", "console"])
        if let database = try root.mapping("database", allowedKeys: ["connection", "pool_size"]) {
            configuration.database.connection = try database.optionalString("connection") ?? ""
            configuration.database.poolSize = try database.integer("pool_size", in: 1...200, default: 8)
        }
        if let logging = try root.mapping("logging", allowedKeys: ["level"]) {
            configuration.logging.level = try logging.choice(
                "level", from: ["trace", "debug", "info", "notice", "warning", "error", "critical"], default: "info")
        }
        if let paths = try root.mapping("paths", allowedKeys: ["state", "policies"]) {
            for key in ["state", "policies"] {
                if let value = try paths.optionalString(key), !value.hasPrefix("/") {
                    throw paths.error(key, "must be an absolute path")
                }
            }
            configuration.paths.state = try paths.optionalString("state") ?? defaults.paths.state
            configuration.paths.policies = try paths.optionalString("policies") ?? defaults.paths.policies
        }
        if let care = try root.mapping(
            "care",
            allowedKeys: [
                "listen", "database", "master_key_file", "access_policy", "session_idle", "session_lifetime", "password_cost",
                "max_login_failures", "lockout", "trust_proxy", "trusted_proxies", "max_body_bytes", "socket_group",
            ])
        {
            var settings = defaults.care
            if let listen = try care.optionalString("listen") {
                guard listen.hasPrefix("unix:/") || Self.isHostPort(listen) else {
                    throw care.error("listen", "must be HOST:PORT (e.g. 127.0.0.1:8080) or unix:/absolute/path")
                }
                settings.listen = listen
            }
            settings.socketGroup = try Self.socketGroup(care, listen: settings.listen)
            settings.database = try care.optionalString("database") ?? ""
            settings.masterKeyFile = try care.optionalString("master_key_file")
            settings.accessPolicy = try care.optionalString("access_policy")
            settings.sessionIdle = try care.duration("session_idle", in: .seconds(60)...(.seconds(86400)), default: settings.sessionIdle)
            settings.sessionLifetime = try care.duration("session_lifetime", in: .seconds(300)...(.seconds(7 * 86400)), default: settings.sessionLifetime)
            settings.passwordCost = try care.integer("password_cost", in: 10...20, default: settings.passwordCost)
            settings.maximumLoginFailures = try care.integer("max_login_failures", in: 1...100, default: settings.maximumLoginFailures)
            settings.lockout = try care.duration("lockout", in: .seconds(1)...(.seconds(86400)), default: settings.lockout)
            settings.trustProxy = try care.boolean("trust_proxy", default: false)
            if care.contains("trusted_proxies") {
                let proxies = try care.strings("trusted_proxies")
                if let invalid = proxies.first(where: { !Self.isIPAddress($0) }) {
                    throw care.error("trusted_proxies", "\(invalid) is not an IPv4 or IPv6 address (networks and host names are not accepted)")
                }
                settings.trustedProxies = proxies
            }
            settings.maximumBodyBytes = try care.integer("max_body_bytes", in: 1024...(16 << 20), default: settings.maximumBodyBytes)
            configuration.care = settings
        }
        if let journal = try root.mapping(
            "journal",
            allowedKeys: [
                "origin", "database", "signing_key_file", "signing_key_files", "verifier_key", "verifier_keys", "checkpoint_within", "checkpoint_reissue", "batch_size",
                "witness_directories", "socket", "socket_peers", "max_frame_bytes",
            ])
        {
            configuration.journal = try parseJournal(journal)
        }
        if let keys = try root.mapping("keys", allowedKeys: ["database", "master_key_file", "policy"]) {
            configuration.keys.database = try keys.optionalString("database") ?? ""
            configuration.keys.masterKeyFile = try keys.optionalString("master_key_file")
            configuration.keys.policy = try keys.optionalString("policy")
        }
        if let retention = try root.mapping("retention", allowedKeys: ["database", "master_key_file", "policy", "batch_size"]) {
            configuration.retention.database = try retention.optionalString("database") ?? ""
            configuration.retention.batchSize = try retention.integer("batch_size", in: 1...10_000, default: 200)
            configuration.retention.masterKeyFile = try retention.optionalString("master_key_file")
            configuration.retention.policy = try retention.optionalString("policy")
            for key in ["master_key_file", "policy"] {
                if let path = try retention.optionalString(key), !path.hasPrefix("/") { throw retention.error(key, "must be an absolute path") }
            }
        }
        if let backup = try root.mapping(
            "backup",
            allowedKeys: [
                "store", "recipients", "identity_file", "database", "copies", "file_trees", "data_directory", "signing_key_files", "verifier_keys",
                "retired_verifier_keys", "head_directories",
            ])
        {
            try parseBackupSigning(backup, into: &configuration.backup)
            configuration.backup.copies = try backup.strings("copies")
            for copy in configuration.backup.copies where !copy.hasPrefix("/") {
                throw backup.error("copies", "\(copy) must be an absolute path")
            }
            configuration.backup.fileTrees = try backup.strings("file_trees")
            for tree in configuration.backup.fileTrees where !tree.hasPrefix("/") {
                throw backup.error("file_trees", "\(tree) must be an absolute path")
            }
            if backup.contains("head_directories") {
                let heads = try backup.strings("head_directories")
                for head in heads where !head.hasPrefix("/") {
                    throw backup.error("head_directories", "\(head) must be an absolute path")
                }
                configuration.backup.headDirectories = heads
            }
            configuration.backup.dataDirectory = try backup.optionalString("data_directory")
            if let data = configuration.backup.dataDirectory, !data.hasPrefix("/") {
                throw backup.error("data_directory", "\(data) must be an absolute path")
            }
            configuration.backup.database = try backup.optionalString("database") ?? ""
            if let store = try backup.optionalString("store") {
                guard store.hasPrefix("/") else { throw backup.error("store", "must be an absolute path") }
                configuration.backup.store = store
            }
            configuration.backup.recipients = try backup.strings("recipients")
            for recipient in configuration.backup.recipients
            where recipient.range(of: "^age1(pq1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{1952}|[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58})$", options: .regularExpression) == nil {
                throw backup.error(
                    "recipients",
                    "\(recipient.prefix(20))… is not an age recipient (X25519: age1 and 58 lowercase Bech32 characters; hybrid post-quantum: age1pq1 and 1952)")
            }
            let postQuantum = configuration.backup.recipients.filter { $0.hasPrefix("age1pq1") }.count
            guard postQuantum == 0 || postQuantum == configuration.backup.recipients.count else {
                throw backup.error("recipients", "mixes hybrid post-quantum (age1pq1…) and classic recipients: one backup cannot be encrypted to both kinds")
            }
            configuration.backup.identityFile = try backup.optionalString("identity_file")
        }
        if let archives = try root.mapping("archives", allowedKeys: ["directories", "recipients", "identity_file"]) {
            configuration.archives = try parseArchives(archives)
        }
        if let dsar = try root.mapping(
            "dsar", allowedKeys: ["database", "master_key_file", "time_zone", "controller", "warn_days", "check_interval", "mail_command", "mail_to", "mail_from", "establishment",
            ])
        {
            configuration.subjectRequests = try parseSubjectRequests(dsar)
        }
        if let console = try root.mapping(
            "console",
            allowedKeys: ["listen", "database", "key_file", "session_idle", "session_lifetime", "password_cost", "max_login_failures", "lockout", "trust_proxy", "units", "socket_group"])
        {
            configuration.console = try parseConsole(console, defaults: configuration.console)
        }
        return configuration
    }

    static func parseArchives(_ archives: SettingsMapping) throws -> Archives {
        let directories = try archives.strings("directories")
        for directory in directories where !directory.hasPrefix("/") {
            throw archives.error("directories", "\(directory) must be an absolute path")
        }
        guard Set(directories).count == directories.count else { throw archives.error("directories", "lists a directory twice") }
        let recipients = try archives.strings("recipients")
        for recipient in recipients where !isAgeRecipient(recipient) {
            throw archives.error(
                "recipients",
                "\(recipient.prefix(20))… is not an age recipient (X25519: age1 and 58 lowercase Bech32 characters; hybrid post-quantum: age1pq1 and 1952)")
        }
        let postQuantum = recipients.filter { $0.hasPrefix("age1pq1") }.count
        guard postQuantum == 0 || postQuantum == recipients.count else {
            throw archives.error("recipients", "mixes hybrid post-quantum (age1pq1…) and classic recipients: one archive cannot be encrypted to both kinds")
        }
        let identityFile = try archives.optionalString("identity_file")
        if let identityFile, !identityFile.hasPrefix("/") { throw archives.error("identity_file", "must be an absolute path") }
        return Archives(directories: directories, recipients: recipients, identityFile: identityFile)
    }

    /// True for `age1…` (X25519) or `age1pq1…` (hybrid post-quantum) in Bech32.
    static func isAgeRecipient(_ text: String) -> Bool {
        text.range(of: "^age1(pq1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{1952}|[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58})$", options: .regularExpression) != nil
    }

    static func parseSubjectRequests(_ dsar: SettingsMapping) throws -> SubjectRequests {
        var settings = defaultSubjectRequests
        settings.database = try dsar.optionalString("database") ?? ""
        settings.masterKeyFile = try dsar.optionalString("master_key_file")
        if let file = settings.masterKeyFile, !file.hasPrefix("/") { throw dsar.error("master_key_file", "must be an absolute path") }
        if let zone = try dsar.optionalString("time_zone") {
            guard TimeZone(identifier: zone) != nil, zone.contains("/") || zone == "UTC" else {
                throw dsar.error("time_zone", "\(zone) is not an IANA time zone (e.g. Europe/Paris)")
            }
            settings.timeZone = zone
        }
        settings.controller = SubjectRequests.Controller(rawValue: try dsar.choice("controller", from: ["public", "private"], default: "public"))!
        settings.warnDays = try dsar.integer("warn_days", in: 0...60, default: settings.warnDays)
        settings.checkInterval = try dsar.duration("check_interval", in: .seconds(60)...(.seconds(86400)), default: settings.checkInterval)
        settings.mailCommand = try dsar.strings("mail_command")
        if let program = settings.mailCommand.first, !program.hasPrefix("/") {
            throw dsar.error("mail_command", "the program must be an absolute path (e.g. /usr/sbin/sendmail)")
        }
        settings.mailTo = try dsar.strings("mail_to")
        for address in settings.mailTo where !Self.isMailAddress(address) {
            throw dsar.error("mail_to", "\(address) is not a mail address")
        }
        if !settings.mailCommand.isEmpty && settings.mailTo.isEmpty { throw dsar.error("mail_to", "name who receives the reports when mail_command is set") }
        if let from = try dsar.optionalString("mail_from") {
            guard Self.isMailAddress(from) else { throw dsar.error("mail_from", "\(from) is not a mail address") }
            settings.mailFrom = from
        }
        if let establishment = try dsar.optionalString("establishment") {
            guard (1...200).contains(establishment.unicodeScalars.count) else { throw dsar.error("establishment", "must be 1 to 200 characters") }
            settings.establishment = establishment
        }
        return settings
    }

    static func parseConsole(_ console: SettingsMapping, defaults: Console) throws -> Console {
        var settings = defaults
        if let listen = try console.optionalString("listen") {
            guard listen.hasPrefix("unix:/") || Self.isHostPort(listen) else {
                throw console.error("listen", "must be HOST:PORT (e.g. 127.0.0.1:8090) or unix:/absolute/path")
            }
            settings.listen = listen
        }
        settings.socketGroup = try Self.socketGroup(console, listen: settings.listen)
        settings.database = try console.optionalString("database") ?? ""
        settings.keyFile = try console.optionalString("key_file")
        if let file = settings.keyFile, !file.hasPrefix("/") { throw console.error("key_file", "must be an absolute path") }
        settings.sessionIdle = try console.duration("session_idle", in: .seconds(60)...(.seconds(86400)), default: settings.sessionIdle)
        settings.sessionLifetime = try console.duration("session_lifetime", in: .seconds(300)...(.seconds(86400)), default: settings.sessionLifetime)
        settings.passwordCost = try console.integer("password_cost", in: 10...20, default: settings.passwordCost)
        settings.maximumLoginFailures = try console.integer("max_login_failures", in: 1...100, default: settings.maximumLoginFailures)
        settings.lockout = try console.duration("lockout", in: .seconds(1)...(.seconds(86400)), default: settings.lockout)
        settings.trustProxy = try console.boolean("trust_proxy", default: false)
        if console.contains("units") {
            settings.units = try console.strings("units")
            for unit in settings.units where unit.range(of: "^[A-Za-z0-9@._-]+\\.(service|timer|socket)$", options: .regularExpression) == nil {
                throw console.error("units", "\(unit) is not a unit name such as osmose-care.service")
            }
        }
        return settings
    }

    /// A plain `local@domain` address, without display name, spaces or line breaks
    /// (it goes into a message header).
    static func isMailAddress(_ text: String) -> Bool {
        text.range(of: #"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$"#, options: .regularExpression) != nil
    }

    /// The backup-signing settings: key files, verifier keys, retired verifier keys.
    static func parseBackupSigning(_ backup: SettingsMapping, into settings: inout Backup) throws {
        settings.signingKeyFiles = try backup.strings("signing_key_files")
        for file in settings.signingKeyFiles where !file.hasPrefix("/") {
            throw backup.error("signing_key_files", "\(file) must be an absolute path")
        }
        func isVerifierKey(_ key: String) -> Bool {
            key.range(of: "^[!-*,-~]+\\+[0-9a-f]{8}\\+[A-Za-z0-9+/]{44}$", options: .regularExpression) != nil
        }
        for key in try backup.strings("verifier_keys") {
            guard isVerifierKey(key) else {
                throw backup.error("verifier_keys", "\(key.prefix(80)) is not a verifier key (name+id+key, as osmosectl keys rotate --purpose backup-signing prints it)")
            }
            if !settings.verifierKeys.contains(key) { settings.verifierKeys.append(key) }
        }
        settings.retiredVerifierKeys = try backup.mappings("retired_verifier_keys", allowedKeys: ["key", "retired"]).map { entry in
            let key = try entry.string("key")
            guard isVerifierKey(key) else { throw entry.error("key", "\(key.prefix(80)) is not a verifier key (name+id+key)") }
            let retired = try entry.string("retired")
            guard retired.range(of: "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$", options: .regularExpression) != nil else {
                throw entry.error("retired", "must be an RFC 3339 UTC time such as 2026-12-01T02:00:00Z (osmosectl keys status prints it)")
            }
            return Backup.RetiredVerifierKey(key: key, retired: retired)
        }
        for retired in settings.retiredVerifierKeys where settings.verifierKeys.contains(retired.key) {
            throw backup.error("retired_verifier_keys", "\(retired.key.prefix(60))… is also in backup.verifier_keys: a key is live or retired, not both")
        }
    }

    static func parseJournal(_ journal: SettingsMapping) throws -> Journal {
        var settings = defaults.journal
        if let origin = try journal.optionalString("origin") {
            let allowed = origin.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && $0 != "+" }
            guard allowed, !origin.isEmpty, origin.count <= 255 else {
                throw journal.error("origin", "must be printable ASCII without spaces or '+', e.g. journal.chu-exemple.fr")
            }
            settings.origin = origin
        }
        settings.database = try journal.optionalString("database") ?? ""
        settings.signingKeyFiles = try journal.optionalString("signing_key_file").map { [$0] } ?? []
        settings.signingKeyFiles += try journal.strings("signing_key_files")
        for file in settings.signingKeyFiles where !file.hasPrefix("/") {
            throw journal.error("signing_key_files", "\(file) must be an absolute path")
        }
        let verifierKeys = (try journal.optionalString("verifier_key").map { [$0] } ?? []) + (try journal.strings("verifier_keys"))
        for key in verifierKeys {
            // name+id+key as C2SP signed-note spells it; osmosectl checks the id against the key.
            guard key.range(of: "^[!-*,-~]+\\+[0-9a-f]{8}\\+[A-Za-z0-9+/]{44}$", options: .regularExpression) != nil,
                key.hasPrefix(settings.origin + "+")
            else {
                throw journal.error(
                    "verifier_keys", "\(key) is not a verifier key of \(settings.origin) (name+id+key, as osmosectl journal vkey prints it)")
            }
            if !settings.verifierKeys.contains(key) { settings.verifierKeys.append(key) }
        }
        settings.checkpointWithin = try journal.duration("checkpoint_within", in: .milliseconds(100)...(.seconds(3600)), default: settings.checkpointWithin)
        settings.checkpointReissue = try journal.duration("checkpoint_reissue", in: .seconds(1)...(.seconds(86400)), default: settings.checkpointReissue)
        settings.batchSize = try journal.integer("batch_size", in: 1...100_000, default: settings.batchSize)
        settings.witnessDirectories = try journal.strings("witness_directories")
        for directory in settings.witnessDirectories where !directory.hasPrefix("/") {
            throw journal.error("witness_directories", "\(directory) must be an absolute path")
        }
        if let socket = try journal.optionalString("socket"), !socket.isEmpty {
            guard socket.hasPrefix("unix:/"), socket.utf8.count <= 5 + 107 else { throw journal.error("socket", "must be unix:/absolute/path (at most 107 bytes)") }
            settings.socket = socket
        }
        settings.socketPeers = try journal.mappings("socket_peers", allowedKeys: ["uid", "user", "source"]).map { peer in
            let source = try peer.string("source")
            guard source.range(of: "^[a-z][a-z0-9-]{0,62}$", options: .regularExpression) != nil else {
                throw peer.error("source", "must be a program name such as osmose-backupd")
            }
            if peer.contains("uid") {
                return Journal.SocketPeer(uid: UInt32(try peer.integer("uid", in: 0...Int(Int32.max))), source: source)
            }
            let user = try peer.string("user")
            guard let entry = getpwnam(user) else { throw peer.error("user", "no such user \(user) on this host") }
            return Journal.SocketPeer(uid: entry.pointee.pw_uid, source: source)
        }
        settings.maximumFrameBytes = try journal.integer("max_frame_bytes", in: 1024...(1 << 20), default: settings.maximumFrameBytes)
        return settings
    }

    /// `socket_group`: a group name, only beside a Unix socket.
    static func socketGroup(_ mapping: SettingsMapping, listen: String) throws -> String? {
        guard let group = try mapping.optionalString("socket_group") else { return nil }
        guard listen.hasPrefix("unix:") else { throw mapping.error("socket_group", "goes with listen: unix:/path (a TCP port has no group)") }
        guard group.wholeMatch(of: /[a-z_][a-z0-9_-]{0,31}/) != nil else {
            throw mapping.error("socket_group", "'\(group)' is not a group name (lower-case letters, digits, '_' and '-', at most 32)")
        }
        return group
    }

    static func isHostPort(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return false }
        return (1...65535).contains(port) && colon != text.startIndex
    }

    /// True for an IPv4 or IPv6 address written as `inet_pton` reads it.
    static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    /// The connection string the care service uses.
    public var careConnection: String { care.database.isEmpty ? database.connection : care.database }
    /// The connection string osmose-backupd uses (base backups need a role with REPLICATION).
    public var backupConnection: String { backup.database.isEmpty ? database.connection : backup.database }
    /// Where the store's signed head is kept: `backup.head_directories`, else `journal.witness_directories`.
    public var backupHeadDirectories: [String] { backup.headDirectories ?? journal.witnessDirectories }

    /// The connection string osmose-console uses.
    public var consoleConnection: String { console.database.isEmpty ? database.connection : console.database }

    /// The connection string osmose-journald uses.
    public var journalConnection: String { journal.database.isEmpty ? database.connection : journal.database }
    /// The connection string osmose-keyd uses.
    public var keysConnection: String { keys.database.isEmpty ? database.connection : keys.database }
    /// The connection string osmose-dsard and `osmosectl dsar` use.
    public var subjectRequestConnection: String { subjectRequests.database.isEmpty ? database.connection : subjectRequests.database }
    /// The key policy file osmose-keyd reads.
    public var keyPolicyPath: String { keys.policy ?? "\(paths.policies)/keys.yaml" }
    /// The backup policy file.
    public var backupPolicyPath: String { "\(paths.policies)/backup.yaml" }
    /// The connection string osmose-retentiond uses.
    public var retentionConnection: String { retention.database.isEmpty ? database.connection : retention.database }
    /// The retention policy file.
    public var retentionPolicyPath: String { retention.policy ?? "\(paths.policies)/retention.yaml" }
    /// The access policy file the care service reads.
    public var accessPolicyPath: String { care.accessPolicy ?? "\(paths.policies)/access.yaml" }
}
