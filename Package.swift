// swift-tools-version: 6.1
// The Osmose compliance suite: one package, one library module per capability,
// thin executables. See docs/architecture.md.
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// The journal's hashing, encoding and verification run over millions of entries,
/// in tests too (the tampering harness verifies 10,000 entries a thousand times):
/// compiled with optimisation even in debug builds.
let optimisedSettings = strictSettings + [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "osmose",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "osmosectl", targets: ["osmosectl"]),
        .executable(name: "osmose-care", targets: ["osmose-care"]),
        .executable(name: "osmose-journald", targets: ["osmose-journald"]),
        .executable(name: "osmose-keyd", targets: ["osmose-keyd"]),
        .executable(name: "osmose-backupd", targets: ["osmose-backupd"]),
        .executable(name: "osmose-retentiond", targets: ["osmose-retentiond"]),
        .executable(name: "osmose-dsard", targets: ["osmose-dsard"]),
        .executable(name: "osmose-console", targets: ["osmose-console"]),
        // The Debian package's single executable (scripts/package): every program above, by the name it is started under.
        .executable(name: "osmose", targets: ["osmose-multicall"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0", traits: ["FullFoundation"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        // C libraries: module maps and shim headers only.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CLibpq",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),

        // A constructor that initialises OpenSSL without its exit-time cleanup, which
        // raced with threads ending at exit (issue 23; see its shim.c).
        .target(name: "CCryptographyShims", dependencies: ["COpenSSL"]),

        // Shared modules.
        // The error shape every module follows (a stable code, equality on it).
        .target(name: "ErrorConventions", swiftSettings: strictSettings),
        .target(
            name: "Cryptography",
            dependencies: ["ErrorConventions", "COpenSSL", "CCryptographyShims"],
            swiftSettings: optimisedSettings
        ),
        .target(
            name: "Store",
            dependencies: [
                "ErrorConventions",
                "CLibpq",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: optimisedSettings
        ),
        .target(
            name: "Schema",
            dependencies: [
                "ErrorConventions",
                "Store",
                "Cryptography",
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Migrations")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Systemd",
            dependencies: [
                "ErrorConventions",
                "Cryptography",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Settings",
            dependencies: [
                "ErrorConventions",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),
        .target(name: "Keyring", dependencies: ["ErrorConventions", "Cryptography", "Store"], swiftSettings: strictSettings),
        // Start-up shared by every daemon: options, logging, sd_notify, exit statuses, graceful shutdown.
        .target(
            name: "DaemonRuntime",
            dependencies: [
                "Settings", "Systemd", "Store", "Keyring", "Journal",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings),
        .target(name: "Age", dependencies: ["Cryptography"], swiftSettings: strictSettings),
        .systemLibrary(name: "CLibarchive", pkgConfig: "libarchive", providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CGlibcExtras"),
        // Encrypted archives (pax through libarchive, zstd frames through libzstd, age): backups and cold journal archives.
        .target(name: "Archive", dependencies: ["Age", "Cryptography", "CLibarchive", "CZstd"], swiftSettings: strictSettings),
        .target(
            name: "Backup",
            dependencies: ["ErrorConventions", "Archive", "Age", "Cryptography", "CGlibcExtras", "Settings", "Store", "Journal", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings),
        .target(
            name: "BackupService",
            dependencies: [
                "ErrorConventions",
                "Backup", "Age", "Settings", "Store", "Journal", "KeyManagement", "Systemd", "DaemonRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings),
        .executableTarget(name: "osmose-backupd", dependencies: ["BackupService", "DaemonRuntime"], swiftSettings: strictSettings),
        .target(name: "Journal", dependencies: ["ErrorConventions", "Store", "Cryptography"], swiftSettings: optimisedSettings),
        // Cold archives of journal months: write, read back, verify, purge, destroy (docs/retention.md).
        // Optimised like Journal: it hashes and replays millions of entries.
        .target(
            name: "JournalArchive",
            dependencies: ["ErrorConventions", "Journal", "Archive", "Store", "Age", "Cryptography", .product(name: "Logging", package: "swift-log")],
            swiftSettings: optimisedSettings),
        .target(
            name: "CareRecords",
            dependencies: ["ErrorConventions", "Cryptography", "Store", "Keyring", "Journal", "Settings"],
            swiftSettings: strictSettings
        ),
        // The request context both HTTP services share (the peer address their events record).
        .target(
            name: "HTTPContext",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "CareService",
            dependencies: [
                "CareRecords", "Settings", "Cryptography", "Journal", "Keyring", "Store", "Systemd", "DaemonRuntime", "HTTPContext",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "JournalService",
            dependencies: [
                "Journal", "Store", "Settings", "Systemd", "Cryptography", "CGlibcExtras", "DaemonRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings),
        .executableTarget(name: "osmose-journald", dependencies: ["JournalService", "DaemonRuntime"], swiftSettings: strictSettings),
        .target(
            name: "KeyManagement",
            dependencies: [
                "Keyring", "CareRecords", "Journal", "Store", "Settings", "Cryptography", "Age",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        .target(
            name: "KeyService",
            dependencies: [
                "KeyManagement", "Keyring", "Store", "Settings", "Systemd", "DaemonRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings),
        .executableTarget(name: "osmose-keyd", dependencies: ["KeyService", "DaemonRuntime"], swiftSettings: strictSettings),
        // osmose-console: the web pages of the DPO, the security officer and sysadmins.
        .target(
            name: "ConsoleService",
            dependencies: [
                "StaffAccounts", "QRCode", "CareRecords", "Journal", "Backup", "KeyManagement", "Keyring", "Settings", "Store", "Systemd", "DaemonRuntime", "Cryptography",
                "SubjectRequests", "Retention", "HTTPContext",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Templates")],
            swiftSettings: strictSettings),
        .executableTarget(name: "osmose-console", dependencies: ["ConsoleService", "DaemonRuntime"], swiftSettings: strictSettings),
        // QR codes (TOTP enrolment) through Debian's libqrencode.
        .systemLibrary(name: "CQRencode", pkgConfig: "libqrencode", providers: [.apt(["libqrencode-dev"])]),
        .target(name: "QRCode", dependencies: ["CQRencode"], swiftSettings: strictSettings),
        // Staff accounts (DPO, security officer, sysadmin): passwords, TOTP second factor, recovery codes, console sessions.
        .target(
            name: "StaffAccounts",
            dependencies: [
                "ErrorConventions",
                "Cryptography", "Store", "Journal", "CareRecords",
                .product(name: "HummingbirdOTP", package: "hummingbird-auth"),
            ],
            swiftSettings: strictSettings),
        // Retention: policy application, clocks, legal holds, plans, certificates (schema ops).
        .target(
            name: "Retention",
            dependencies: [
                "ErrorConventions",
                "CareRecords", "Journal", "JournalArchive", "SubjectRequests", "Age", "Keyring", "Store", "Settings", "Cryptography",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        .target(
            name: "RetentionService",
            dependencies: [
                "Retention", "Keyring", "Store", "Settings", "Systemd", "Journal", "DaemonRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings),
        // Data-subject requests: the register, deadlines, access packs, evidence files (schema dsar).
        .target(
            name: "SubjectRequests",
            dependencies: ["ErrorConventions", "CareRecords", "Journal", "Keyring", "Store", "Cryptography", "Age", "Archive", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings),
        .target(
            name: "SubjectRequestService",
            dependencies: [
                "SubjectRequests", "CareRecords", "Journal", "Keyring", "Store", "Settings", "Systemd", "DaemonRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings),
        .executableTarget(name: "osmose-retentiond", dependencies: ["RetentionService", "DaemonRuntime"], swiftSettings: strictSettings),
        .executableTarget(name: "osmose-dsard", dependencies: ["SubjectRequestService", "DaemonRuntime"], swiftSettings: strictSettings),
        .executableTarget(
            name: "osmose-multicall",
            dependencies: [
                "OsmoseControl", "CareService", "JournalService", "KeyService", "BackupService", "RetentionService", "SubjectRequestService",
                "ConsoleService", "DaemonRuntime",
            ],
            swiftSettings: strictSettings),
        // The first-run set-up's lists (units, peer map) and its checks (osmosectl setup).
        .target(
            name: "Setup",
            dependencies: [
                "Settings", "Schema", "Store", "Systemd",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "OsmoseControl",
            dependencies: [
                "CareRecords", "Journal", "JournalArchive", "Keyring", "KeyManagement", "Age", "Backup", "Retention", "SubjectRequests",
                "StaffAccounts",
                "Settings",
                "Schema",
                "Setup",
                "Store",
                "Systemd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),

        // Executables: parse, configure, run.
        .executableTarget(
            name: "osmosectl",
            dependencies: ["OsmoseControl"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "osmose-care",
            dependencies: ["CareService", "DaemonRuntime"],
            swiftSettings: strictSettings
        ),
        // Benchmark only (scripts/bench care): osmose-care without journaling of
        // successful reads, to measure what journaling costs. Never installed.
        .executableTarget(
            name: "osmose-care-unjournaled-bench",
            dependencies: ["CareService", "DaemonRuntime", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/osmose-care-unjournaled-bench",
            swiftSettings: strictSettings
        ),
        // Benchmark only (scripts/bench journal): loads synthetic events and measures
        // the delay from an event's commit to its signed checkpoint. Never installed.
        .executableTarget(
            name: "osmose-journal-bench",
            dependencies: ["Journal", "Store", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/osmose-journal-bench",
            swiftSettings: strictSettings
        ),

        // Benchmark only (scripts/bench retention, part a): journals one month of N entries
        // directly, as osmose-journald would have. Never installed.
        .executableTarget(
            name: "osmose-journal-archive-bench",
            dependencies: ["Journal", "JournalArchive", "Store", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/osmose-journal-archive-bench",
            swiftSettings: strictSettings
        ),

        // Benchmark only (scripts/bench keys): seeds encrypted patients and checks
        // them after a rotation. Never installed.
        .executableTarget(
            name: "osmose-keys-bench",
            dependencies: ["CareRecords", "Keyring", "Store", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/osmose-keys-bench",
            swiftSettings: strictSettings
        ),

        // Benchmark and test helper only (scripts/bench retention, the end-to-end
        // tests): seeds patients with old episodes, transmissions and versions, and closed
        // subject requests about them. Never installed.
        .executableTarget(
            name: "osmose-retention-bench",
            dependencies: ["CareRecords", "Journal", "Keyring", "Store", "SubjectRequests", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/osmose-retention-bench",
            swiftSettings: strictSettings
        ),
        // Benchmark only (scripts/bench backup): what signing and checking add to
        // osmose-backupd, measured in isolation on a real store. Never installed.
        .executableTarget(
            name: "osmose-backup-signing-bench",
            dependencies: ["Archive", "Backup", "Journal"],
            path: "Benchmarks/osmose-backup-signing-bench",
            swiftSettings: strictSettings
        ),

        // Tests mirror Sources.
        // The layering rules (design.md, conventions.md), checked on the source tree.
        .testTarget(name: "ArchitectureTests", dependencies: ["TestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ErrorConventionsTests", dependencies: ["ErrorConventions"], swiftSettings: strictSettings),
        .testTarget(name: "CryptographyTests", dependencies: ["Cryptography", "TestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "AgeTests", dependencies: ["Age", "Cryptography", "TestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "ArchiveTests", dependencies: ["Archive", "Age", "Cryptography", "TestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "BackupTests", dependencies: ["Backup", "Archive", "Age", "Cryptography", "Journal", "Store", "Settings", "TestSupport"], swiftSettings: strictSettings),
        .testTarget(
            name: "StoreTests",
            dependencies: ["Store", "TestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SchemaTests",
            dependencies: ["Schema", "Store", "TestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SystemdTests",
            dependencies: ["Systemd", "Cryptography", "TestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DaemonRuntimeTests",
            dependencies: [
                "DaemonRuntime", "Settings", "Store", "Keyring", "Journal", "Systemd", "TestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SetupTests",
            dependencies: ["Setup", "Settings", "Store", "TestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SettingsTests",
            dependencies: ["Settings"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "KeyringTests",
            dependencies: ["Keyring", "Cryptography", "Store", "TestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "CareRecordsTests", dependencies: ["CareRecords", "Journal", "Store", "TestSupport"], swiftSettings: strictSettings),
        .testTarget(name: "JournalTests", dependencies: ["Journal", "Store", "Cryptography", "TestSupport"], swiftSettings: optimisedSettings),
        .testTarget(
            name: "JournalArchiveTests",
            dependencies: ["JournalArchive", "Journal", "Archive", "Age", "Store", "Cryptography", "TestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings),
        .testTarget(
            name: "CareServiceTests",
            dependencies: ["CareService", "CareRecords", "Keyring", "Schema", "Store", "Journal", "Settings", "SubjectRequests", "TestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "JournalServiceTests",
            dependencies: [
                "JournalService", "Journal", "Store", "TestSupport", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings),
        .testTarget(
            name: "SubjectRequestsTests",
            dependencies: [
                "SubjectRequests", "SubjectRequestService", "CareRecords", "Keyring", "Journal", "Store", "Settings", "Age", "Cryptography", "Systemd", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        .testTarget(
            name: "KeyManagementTests",
            dependencies: ["KeyManagement", "CareRecords", "Keyring", "Store", "Settings", "Journal", "Age", "TestSupport"],
            swiftSettings: strictSettings),
        .testTarget(
            name: "RetentionTests",
            dependencies: [
                "Retention", "SubjectRequests", "CareRecords", "Keyring", "Store", "Settings", "Journal", "JournalArchive", "Age", "Cryptography", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        .testTarget(
            name: "ConsoleTests",
            dependencies: [
                "ConsoleService", "StaffAccounts", "QRCode", "Journal", "Store", "Schema", "Settings", "Cryptography", "TestSupport", "SubjectRequests", "Retention",
                "Keyring", "CareRecords",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdOTP", package: "hummingbird-auth"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["TestSupport", "Store", "Journal", "Age"],
            swiftSettings: strictSettings
        ),
        // The memory-safety stress test (issue 23): the unsafe paths many times and side
        // by side, for the sanitizer builds (scripts/test --sanitize address|thread).
        .testTarget(
            name: "StressTests",
            dependencies: ["TestSupport", "Store", "Journal", "Keyring", "CareRecords", "Age"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TestSupport",
            dependencies: ["Store", "Schema"],
            path: "Tests/TestSupport",
            swiftSettings: strictSettings
        ),
    ]
)
