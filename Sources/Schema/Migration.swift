import Cryptography
public import Foundation

/// One versioned SQL file.
public struct Migration: Hashable, Sendable {
    /// The number the file name starts with; migrations apply in increasing order.
    public let version: Int
    /// The rest of the file name, without `.sql`.
    public let name: String
    /// The SQL text.
    public let sql: String
    /// SHA-256 of the file's bytes, recorded when applied to detect later edits.
    public let checksum: [UInt8]

    /// Creates a migration from its file name (`0003_journal_tables.sql`) and contents.
    /// - Throws: ``SchemaError/Code/invalidMigrationFile`` for a name not of that form.
    public init(fileName: String, contents: [UInt8]) throws {
        let stem = fileName.hasSuffix(".sql") ? String(fileName.dropLast(4)) : ""
        let parts = stem.split(separator: "_", maxSplits: 1)
        guard parts.count == 2, parts[0].count == 4, let version = Int(parts[0]), version > 0,
            parts[1].allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") })
        else {
            throw SchemaError(.invalidMigrationFile, "\(fileName): a migration file is named NNNN_lowercase_words.sql")
        }
        guard let sql = String(validating: contents, as: UTF8.self) else {
            throw SchemaError(.invalidMigrationFile, "\(fileName): not valid UTF-8")
        }
        self.version = version
        self.name = String(parts[1])
        self.sql = sql
        self.checksum = SHA256.hash(contents)
    }

    /// The file name this migration came from.
    public var fileName: String { String(format: "%04d_%@.sql", version, name) }
}

/// The ordered migrations of one build.
public struct MigrationSet: Sendable {
    /// Migrations in version order.
    public let migrations: [Migration]

    /// Checks and orders `migrations`.
    /// - Throws: ``SchemaError/Code/invalidMigrationFile`` when two share a version.
    public init(_ migrations: [Migration]) throws {
        let sorted = migrations.sorted { $0.version < $1.version }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where previous.version == next.version {
            throw SchemaError(.invalidMigrationFile, "\(previous.fileName) and \(next.fileName) share version \(next.version)")
        }
        self.migrations = sorted
    }

    /// Loads every `.sql` file in `directory`.
    public static func load(directory: URL) throws -> MigrationSet {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }
        return try MigrationSet(names.map { name in
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            return try Migration(fileName: name, contents: Array(data))
        })
    }

    /// The migrations shipped with this build.
    public static func bundled() throws -> MigrationSet {
        guard let directory = Bundle.module.url(forResource: "Migrations", withExtension: nil) else {
            throw SchemaError(.invalidMigrationFile, "the build's Migrations folder is missing from its resource bundle")
        }
        return try load(directory: directory)
    }
}
