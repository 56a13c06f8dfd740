public import Archive
import Foundation
import Journal

/// The layout of a journal month's cold archive, as docs/retention.md ("Archive
/// format") specifies it for third parties: a pax tar, zstd-compressed, age-encrypted,
/// whose members all lie under one directory `journal-YYYY-MM/`, in this order:
///
/// - `README`: how to read and verify the archive with standard tools;
/// - `month.json`: the month, its first and last sequence numbers, the hash chain
///   before and after it, the covering checkpoint (``MonthSummary``);
/// - `checkpoints`: every signed checkpoint whose tree ends inside the month, then
///   the first one whose tree holds all of it, in issue order, each note followed
///   by one empty line (the witness log format);
/// - `checkpoint`: that last, covering checkpoint alone;
/// - `tile/<L>/<N>` and `tile/<L>/<N>.p/<W>`: the hash tiles of the covering
///   checkpoint's tree (C2SP tlog-tiles paths) from the tile holding the month's
///   first entry to the tree's right edge, at every level: levels 1 and up first,
///   then each level-0 tile followed by its entry bundle;
/// - `entries/<N>`: the month's entries among the log's entries 256·N … 256·N+255,
///   as C2SP entry bundles (N written as in tile paths, e.g. `x001/234`);
/// - `manifest.json`: the SHA-256 of every other member (``ArchiveManifest``).
public enum ArchiveLayout {
    /// The manifest's `format`.
    public static let formatName = "osmose-journal-archive"
    /// The manifest's `version`.
    public static let formatVersion = 1

    /// The archive's file name: the origin (characters other than letters, digits,
    /// dots and hyphens replaced by `_`), then `-journal-YYYY-MM.tar.zst.age`.
    public static func fileName(origin: String, month: JournalMonth) -> String {
        let safe = String(origin.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || scalar == "." || scalar == "-") ? Character(scalar) : "_"
        })
        return "\(safe)-journal-\(month).tar.zst.age"
    }

    /// The directory every member lies under.
    public static func root(_ month: JournalMonth) -> String { "journal-\(month)" }

    static func readme(_ month: JournalMonth) -> String { root(month) + "/README" }
    static func checkpoints(_ month: JournalMonth) -> String { root(month) + "/checkpoints" }
    static func checkpoint(_ month: JournalMonth) -> String { root(month) + "/checkpoint" }
    static func manifest(_ month: JournalMonth) -> String { root(month) + "/manifest.json" }
    static func summary(_ month: JournalMonth) -> String { root(month) + "/month.json" }

    /// `journal-YYYY-MM/tile/<L>/<N>` (`.p/<W>` for a partial tile).
    static func tile(_ month: JournalMonth, level: Int, index: UInt64, width: Int?) -> String {
        root(month) + "/" + JournalFormats.tilePath(level: level, index: index, partialWidth: width)
    }

    /// `journal-YYYY-MM/entries/<N>`.
    static func bundle(_ month: JournalMonth, index: UInt64) -> String {
        root(month) + "/entries/" + JournalFormats.tilePath(level: nil, index: index).dropFirst("tile/entries/".count)
    }

    /// The README every archive carries.
    static func readmeText(month: JournalMonth, origin: String) -> String {
        """
        Osmose access journal, \(origin), month \(month) (UTC), cold archive format \(formatVersion).

        This directory is one month of a tamper-evident access journal: an RFC 6962 /
        RFC 9162 Merkle tree (SHA-256) whose checkpoints are C2SP tlog-checkpoint notes
        signed with Ed25519 (C2SP signed-note).

          month.json      the month, first_sequence, last_sequence, chain_before,
                          chain_after and the covering checkpoint
          checkpoints     every checkpoint whose tree ends inside the month, then the
                          first one whose tree holds the whole month, in issue order,
                          each note followed by one empty line
          checkpoint      that last, covering checkpoint
          tile/           C2SP tlog-tiles hash tiles of the covering checkpoint's tree,
                          from the tile holding the month's first entry to its right edge
          entries/N       the month's entries among entries 256*N ... 256*N+255, as a
                          C2SP entry bundle (uint16 big-endian length, then the bytes)
          manifest.json   the size and SHA-256 of every other file

        To verify: check the covering checkpoint's signature with the log's verifier
        key; authenticate the tiles against its root (tlog-tiles); hash each entry as
        a leaf, SHA-256(0x00 || entry), and compare with its level-0 tile. The hash
        chain starts from chain_before: chain_i = SHA-256(chain_{i-1} || leaf_i), and
        must give the osmose-chain line of every checkpoint of size <= last_sequence+1.
        The entries' byte format is the Osmose canonical entry, format version 1
        (docs/journal.md of the Osmose suite).

        """
    }
}

/// What a cold archive holds, as its first data member `month.json` says: read
/// before the entries, so that a reader can check them as they stream by.
public struct MonthSummary: Codable, Sendable, Hashable {
    /// The covering checkpoint: the first one whose tree holds every entry of the month.
    public struct Covering: Codable, Sendable, Hashable {
        /// Its number in the log.
        public var id: Int64
        /// Its tree size.
        public var size: UInt64
        /// Its root hash, base64.
        public var root: String
    }

    /// `osmose-journal-archive`.
    public var format: String
    /// 1.
    public var version: Int
    /// The log's origin (its checkpoints' first line).
    public var origin: String
    /// The month, `YYYY-MM`.
    public var month: JournalMonth
    /// The month's first and last sequence numbers and how many entries it holds.
    public var firstSequence: UInt64
    public var lastSequence: UInt64
    public var entryCount: UInt64
    /// chain_{first−1} and chain_{last}, base64 (as `osmose-chain` lines spell them).
    public var chainBefore: String
    public var chainAfter: String
    /// The covering checkpoint.
    public var covering: Covering
    /// The ids of the first and last checkpoints in `checkpoints`, and how many it holds (consecutive ids).
    public var firstCheckpointID: Int64
    public var lastCheckpointID: Int64
    public var checkpointCount: Int64

    enum CodingKeys: String, CodingKey {
        case format, version, origin, month, covering
        case firstSequence = "first_sequence", lastSequence = "last_sequence", entryCount = "entry_count"
        case chainBefore = "chain_before", chainAfter = "chain_after"
        case firstCheckpointID = "first_checkpoint_id", lastCheckpointID = "last_checkpoint_id", checkpointCount = "checkpoint_count"
    }
}

/// The last member, `manifest.json`: every other member with its size and SHA-256,
/// and what was learnt while writing them.
public struct ArchiveManifest: Codable, Sendable, Hashable {
    /// `osmose-journal-archive`.
    public var format: String
    /// 1.
    public var version: Int
    /// The month, `YYYY-MM`.
    public var month: JournalMonth
    /// The earliest and latest occurred_at among the entries (RFC 3339, UTC).
    public var occurredFrom: String
    public var occurredTo: String
    /// How many hash tiles and entry bundles the archive holds.
    public var tileCount: Int
    public var bundleCount: Int
    /// When and by whom it was written.
    public var writtenAt: String
    public var writtenBy: String
    /// Every other member, in archive order, with its size and SHA-256.
    public var members: [ArchiveMember]

    enum CodingKeys: String, CodingKey {
        case format, version, month, members
        case occurredFrom = "occurred_from", occurredTo = "occurred_to", tileCount = "tile_count", bundleCount = "bundle_count"
        case writtenAt = "written_at", writtenBy = "written_by"
    }
}

/// JSON as the archive holds it: keys sorted, indented, ending in a newline.
enum ArchiveJSON {
    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value)) + [0x0A]
    }

    /// - Throws: ``JournalArchiveError`` `.verification` naming the member.
    static func decode<Value: Decodable>(_ type: Value.Type, _ bytes: [UInt8], member: String) throws -> Value {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw JournalArchiveError(.verification, "\(member) is not what the archive format says: \(error)")
        }
    }
}
