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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0", traits: ["FullFoundation"]),
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

        // Shared modules.
        .target(
            name: "Cryptography",
            dependencies: ["COpenSSL"],
            swiftSettings: optimisedSettings
        ),
        .target(
            name: "Store",
            dependencies: [
                "CLibpq",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: optimisedSettings
        ),
        .target(
            name: "Schema",
            dependencies: [
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
                "Cryptography",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Settings",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),
        .target(name: "Keyring", dependencies: ["Cryptography", "Store"], swiftSettings: strictSettings),
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
        .systemLibrary(name: "CGlibcExtras"),
        // Encrypted archives (pax + zstd + age through libarchive): backups and cold journal archives.
        .target(name: "Archive", dependencies: ["Age", "Cryptography", "CLibarchive"], swiftSettings: strictSettings),
        .target(
            name: "Backup",
            dependencies: ["Archive", "Age", "Cryptography", "CGlibcExtras", "Settings", "Store", "Journal", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings),
        .target(
            name: "BackupService",
            dependencies: [
                "Backup", "Age", "Settings", "Store", "Journal", "KeyManagement", "Systemd", "DaemonRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings),
        .executableTarget(name: "osmose-backupd", dependencies: ["BackupService", "DaemonRuntime"], swiftSettings: strictSettings),
        .target(name: "Journal", dependencies: ["Store", "Cryptography"], swiftSettings: optimisedSettings),
        .target(
            name: "CareRecords",
            dependencies: ["Cryptography", "Store", "Keyring", "Journal", "Settings"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "CareService",
            dependencies: [
                "CareRecords", "Settings", "Cryptography", "Journal", "Keyring", "Store", "Systemd", "DaemonRuntime",
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
        .target(
            name: "OsmoseControl",
            dependencies: [
                "CareRecords", "Journal", "Keyring", "KeyManagement", "Age", "Backup",
                "Settings",
                "Schema",
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

        // Benchmark only (scripts/bench keys): seeds encrypted patients and checks
        // them after a rotation. Never installed.
        .executableTarget(
            name: "osmose-keys-bench",
            dependencies: ["CareRecords", "Keyring", "Store", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/osmose-keys-bench",
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
            name: "CareServiceTests",
            dependencies: ["CareService", "CareRecords", "Keyring", "Schema", "Store", "Journal", "Settings", "TestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "JournalServiceTests",
            dependencies: [
                "JournalService", "Journal", "Store", "TestSupport", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings),
        .testTarget(
            name: "KeyManagementTests",
            dependencies: ["KeyManagement", "CareRecords", "Keyring", "Store", "Settings", "Journal", "Age", "TestSupport"],
            swiftSettings: strictSettings),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["TestSupport", "Store", "Journal", "Age"],
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
