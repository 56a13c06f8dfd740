import Archive
import Cryptography
public import ErrorConventions
public import Foundation
import Glibc
public import Journal

/// Why something in a backup store cannot be trusted: unsigned, signed by a key the
/// configuration does not list (or by a retired key after its retirement), or not
/// what was signed. `subject` names the file (relative to the store, or a head
/// file's path); the commands exit with status 5.
public struct BackupIntegrityError: CodedError {
    /// A stable identifier for the kind of problem.
    public struct Code: ErrorCode {
        /// The stable string, e.g. `backup.integrity.unsigned`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// No signature (a store written before signing, or a signature removed).
        public static let unsigned = Code("backup.integrity.unsigned")
        /// Signed, but by no key `backup.verifier_keys` lists.
        public static let unknownKey = Code("backup.integrity.unknown_key")
        /// A signature by a listed key that does not verify, or a malformed signature file.
        public static let badSignature = Code("backup.integrity.bad_signature")
        /// Signed only by a retired key, for something after its retirement.
        public static let retiredKey = Code("backup.integrity.retired_key")
        /// A file differs from what its signature states.
        public static let mismatch = Code("backup.integrity.mismatch")
        /// The store holds less than a signed head or copy state says it held: rolled back.
        public static let rolledBack = Code("backup.integrity.rolled_back")
        /// The catalogue's hash chain is broken (a backup removed or replaced).
        public static let chain = Code("backup.integrity.chain")
    }

    /// What kind of problem.
    public let code: Code
    /// The file concerned: `base/<id>/backup.sig`, `wal/<name>.tar.zst.age`, …
    public let subject: String
    /// What is wrong (no key material, no content).
    public let message: String

    /// A problem with `subject`.
    public init(_ code: Code, _ subject: String, _ message: String) {
        self.code = code
        self.subject = subject
        self.message = message
    }

    /// `subject: message`.
    public var description: String { "\(subject): \(message)" }

    public static func == (lhs: BackupIntegrityError, rhs: BackupIntegrityError) -> Bool { lhs.code == rhs.code && lhs.subject == rhs.subject }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(subject)
    }
}

/// What a backup signature states: the text of a C2SP signed note, one statement per
/// file it covers (docs/backup.md, "Signatures"):
///
/// ```
/// osmose-backup/v1 <kind> <subject>
/// <key> <value>
/// …
/// ```
///
/// Values never hold a newline; `-` stands for none. `file <sha256> <bytes> <name>`
/// lines give the SHA-256 and size of a file of the store as written, so that
/// standard tools check it (`sha256sum`) before decrypting anything.
public struct BackupStatement: Sendable, Hashable {
    /// What is signed.
    public enum Kind: String, Sendable, CaseIterable {
        /// A backup: `base/<id>/backup.sig`.
        case backup
        /// A WAL file: `wal/<name>.sig`.
        case wal
        /// A pruned backup's tombstone (a line of `base/pruned.log`).
        case pruned
        /// The store's head, kept beside the journal's witness copies.
        case head
        /// A copy location's state, in the copy (`copy-state.sig`).
        case copyState = "copy-state"
    }

    /// The first line's format word.
    public static let format = "osmose-backup/v1"

    /// What is signed.
    public let kind: Kind
    /// The backup id, WAL file name, or location.
    public let subject: String
    /// The other lines, in order.
    public let fields: [(key: String, value: String)]

    /// A statement.
    /// - Throws: ``BackupIntegrityError`` when a key or value cannot be written on one line.
    public init(kind: Kind, subject: String, fields: [(key: String, value: String)]) throws {
        for (key, value) in fields {
            guard key.range(of: "^[a-z][a-z0-9-]*$", options: .regularExpression) != nil, !value.isEmpty, !value.contains("\n"),
                !value.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) })
            else { throw BackupIntegrityError(.badSignature, subject, "the statement's field \(key) cannot be written on one line") }
        }
        guard !subject.isEmpty, !subject.contains(" "), !subject.contains("\n") else {
            throw BackupIntegrityError(.badSignature, subject, "a statement's subject is one word")
        }
        self.kind = kind
        self.subject = subject
        self.fields = fields
    }

    public static func == (lhs: BackupStatement, rhs: BackupStatement) -> Bool { lhs.text == rhs.text }
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }

    /// The note text: the first line, then one line per field, each ending in a newline.
    public var text: String {
        ([ "\(Self.format) \(kind.rawValue) \(subject)" ] + fields.map { "\($0.key) \($0.value)" }).map { $0 + "\n" }.joined()
    }

    /// Parses a note's text.
    /// - Parameter file: the signature's file, named in errors.
    /// - Throws: ``BackupIntegrityError`` `.badSignature` when the text is not a statement.
    public static func parse(_ text: String, file: String) throws -> BackupStatement {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        let head = lines.first?.split(separator: " ", omittingEmptySubsequences: false) ?? []
        guard head.count == 3, head[0] == Self.format, let kind = Kind(rawValue: String(head[1])) else {
            throw BackupIntegrityError(.badSignature, file, "the signed text does not start with \"\(Self.format) KIND SUBJECT\"")
        }
        var fields: [(key: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let space = line.firstIndex(of: " ") else { throw BackupIntegrityError(.badSignature, file, "a signed line is KEY VALUE") }
            fields.append((String(line[..<space]), String(line[line.index(after: space)...])))
        }
        return try BackupStatement(kind: kind, subject: String(head[2]), fields: fields)
    }

    /// The value of the single field `key`, nil when absent or `-`.
    public func value(_ key: String) -> String? {
        fields.first { $0.key == key }.flatMap { $0.value == "-" ? nil : $0.value }
    }

    /// A file this statement covers.
    public struct SignedFile: Sendable, Hashable {
        /// Its name, relative to the signature's directory.
        public let name: String
        /// Its size in bytes.
        public let bytes: Int64
        /// SHA-256 of its bytes (hex).
        public let sha256: String
    }

    /// The `file SHA256 BYTES NAME` lines.
    public var files: [SignedFile] {
        fields.filter { $0.key == "file" }.compactMap { field in
            let parts = field.value.split(separator: " ", maxSplits: 2)
            guard parts.count == 3, parts[0].count == 64, let bytes = Int64(parts[1]) else { return nil }
            return SignedFile(name: String(parts[2]), bytes: bytes, sha256: String(parts[0]))
        }
    }

    /// The file line for `name`.
    public func file(_ name: String) -> SignedFile? { files.first { $0.name == name } }

    /// The field `file` for a file of the store.
    static func fileField(name: String, bytes: Int64, sha256: String) -> (key: String, value: String) { ("file", "\(sha256) \(bytes) \(name)") }

    /// When it was signed (the `signed` field).
    public var signedAt: Date? { value("signed").flatMap(SignatureTime.parse) }

    /// The moment this statement speaks of, for a retired key: the latest of its
    /// signing time and, for a backup or a tombstone, the backup's id and pruning time.
    var position: Date? {
        var moments = [signedAt]
        if kind == .backup || kind == .pruned { moments.append(BackupSummary.idDate(subject)) }
        if kind == .pruned { moments.append(value("pruned-at").flatMap(SignatureTime.parse)) }
        let known = moments.compactMap { $0 }
        return known.count == moments.count ? known.max() : nil
    }
}

/// The keys osmose-backupd signs with: every one it was given (the credentials
/// `backup-signing-key`, `backup-signing-key-…`, or `backup.signing_key_files`), so
/// that during a rollover each statement carries the old key's and the new one's
/// signatures.
public struct BackupSigner: Sendable {
    /// The keys, each named as its verifier key says.
    public let keys: [NoteSignerKey]

    /// A signer with `keys`.
    /// - Throws: ``ArchiveError`` when there is none.
    public init(keys: [NoteSignerKey]) throws {
        var unique: [NoteSignerKey] = []
        for key in keys where !unique.contains(where: { $0.verifierKey == key.verifierKey }) { unique.append(key) }
        guard !unique.isEmpty else { throw ArchiveError("no backup-signing key was given") }
        self.keys = unique
    }

    /// Their verifier keys.
    public var verifierKeys: [NoteVerifierKey] { keys.map(\.verifierKey) }

    /// The signed note of `statement`.
    public func sign(_ statement: BackupStatement) throws -> String {
        try SignedNote.sign(statement.text, with: keys)
    }

    /// Signs `statement` and writes the note durably to `path`.
    func write(_ statement: BackupStatement, to path: String, mode: mode_t = 0o640) throws {
        try writeDurably(Array(try sign(statement).utf8), to: path, mode: mode)
    }
}

/// The verifier keys a machine trusts, from its own configuration
/// (`backup.verifier_keys`, `backup.retired_verifier_keys`), never from the store.
public struct BackupTrust: Sendable {
    /// A trusted key, and when it was retired (nil: it signs now).
    public struct Key: Sendable, Hashable {
        /// The verifier key.
        public let verifier: NoteVerifierKey
        /// When osmose-keyd retired it: its signature alone is accepted only for what
        /// was signed, and is positioned, before then.
        public let retiredAt: Date?

        /// A key.
        public init(verifier: NoteVerifierKey, retiredAt: Date? = nil) {
            self.verifier = verifier
            self.retiredAt = retiredAt
        }
    }

    /// The keys.
    public let keys: [Key]
    /// Whether files without any signature are accepted (`--accept-unsigned`): only
    /// those older than everything signed of their kind (a store from before
    /// signing); a forged or wrongly signed file is refused all the same.
    public let acceptUnsigned: Bool

    /// Trust in `keys`.
    public init(keys: [Key], acceptUnsigned: Bool = false) {
        self.keys = keys
        self.acceptUnsigned = acceptUnsigned
    }

    /// Trust from configuration texts: live verifier keys, and retired ones with the
    /// moment of their retirement (RFC 3339).
    /// - Throws: ``ArchiveError`` naming a malformed key or time.
    public init(verifierKeys: [String], retired: [(key: String, retiredAt: String)], acceptUnsigned: Bool = false) throws {
        var keys: [Key] = []
        for text in verifierKeys {
            do {
                keys.append(Key(verifier: try NoteVerifierKey(encoded: text)))
            } catch {
                throw ArchiveError("backup.verifier_keys: \(text.prefix(60)) is not a verifier key (\(error))")
            }
        }
        for (text, time) in retired {
            guard let moment = SignatureTime.parse(time) else {
                throw ArchiveError("backup.retired_verifier_keys: \(time) is not an RFC 3339 UTC time such as 2026-12-01T02:00:00Z")
            }
            do {
                keys.append(Key(verifier: try NoteVerifierKey(encoded: text), retiredAt: moment))
            } catch {
                throw ArchiveError("backup.retired_verifier_keys: \(text.prefix(60)) is not a verifier key (\(error))")
            }
        }
        self.init(keys: keys, acceptUnsigned: acceptUnsigned)
    }

    /// The same trust, also accepting (as live) the keys of `signer`: osmose-backupd
    /// checks what it wrote itself with the keys it holds.
    public func adding(_ signer: BackupSigner) -> BackupTrust {
        BackupTrust(keys: keys + signer.verifierKeys.filter { key in !keys.contains { $0.verifier == key } }.map { Key(verifier: $0) }, acceptUnsigned: acceptUnsigned)
    }

    /// A statement whose signature was checked.
    public struct Authenticated: Sendable {
        /// What was signed.
        public let statement: BackupStatement
        /// The trusted keys whose signatures verified.
        public let signedBy: [Key]
        /// True when only retired keys signed it (accepted because it precedes their retirement).
        public var onlyRetired: Bool { signedBy.allSatisfy { $0.retiredAt != nil } }
    }

    /// Checks `note` (the content of `file`): its signatures, by a trusted key, and
    /// that it states `kind` for `subject`.
    /// - Throws: ``BackupIntegrityError`` naming `file`: malformed, signed by no
    ///   trusted key (the keys found are named), a trusted key's signature that does
    ///   not verify, a statement about something else, or only retired keys for
    ///   something positioned after their retirement.
    public func authenticate(_ note: String, file: String, kind: BackupStatement.Kind, subject: String) throws -> Authenticated {
        let opened: (text: String, signedBy: [NoteVerifierKey])
        do {
            opened = try SignedNote.open(note, verifiers: keys.map(\.verifier))
        } catch let error as NoteError {
            if error.message == "no known key signed the note" {
                let found = Self.signatureKeyNames(note)
                throw BackupIntegrityError(
                    .unknownKey, file,
                    "signed by \(found.isEmpty ? "no key" : found.joined(separator: ", ")), which backup.verifier_keys does not list: not written by this suite's osmose-backupd")
            }
            throw BackupIntegrityError(.badSignature, file, "the signature does not verify (\(error.message)): the file was altered")
        }
        let statement = try BackupStatement.parse(opened.text, file: file)
        guard statement.kind == kind, statement.subject == subject else {
            throw BackupIntegrityError(
                .mismatch, file, "signs \(statement.kind.rawValue) \(statement.subject), not \(kind.rawValue) \(subject): a signature moved from another file")
        }
        let signers = keys.filter { key in opened.signedBy.contains(key.verifier) }
        let authenticated = Authenticated(statement: statement, signedBy: signers)
        if authenticated.onlyRetired {
            let position = statement.position
            guard let position, signers.contains(where: { position < $0.retiredAt! }) else {
                let names = signers.map { "\($0.verifier.name)+\(String(format: "%08x", $0.verifier.keyID)) (retired \(SignatureTime.format($0.retiredAt!)))" }
                throw BackupIntegrityError(
                    .retiredKey, file,
                    "signed only by \(names.joined(separator: ", ")), for something \(position.map { "of \(SignatureTime.format($0))" } ?? "undated"), after its retirement: refused")
            }
        }
        return authenticated
    }

    /// `name+keyid` of each signature line of `note` (for messages).
    static func signatureKeyNames(_ note: String) -> [String] {
        guard let split = note.range(of: "\n\n", options: .backwards) else { return [] }
        return note[split.upperBound...].split(separator: "\n").compactMap { line -> String? in
            let fields = line.dropFirst(2).split(separator: " ")
            guard line.hasPrefix("\u{2014} "), fields.count == 2, let blob = Data(base64Encoded: String(fields[1])), blob.count >= 4 else { return nil }
            return "\(fields[0])+\(blob.prefix(4).map { String(format: "%02x", $0) }.joined())"
        }
    }
}

/// The times signatures carry: RFC 3339 UTC to the millisecond, formatted and
/// parsed by hand (an ICU formatter per value is slow on Linux, and a verify reads
/// one per WAL file).
public enum SignatureTime {
    /// `2026-12-04T17:53:01.700Z`.
    public static func format(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour),
            Int(parts.tm_min), Int(parts.tm_sec), Int(milliseconds % 1000))
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff…]Z`.
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.last == UInt8(ascii: "Z"), bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "T"), bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":")
        else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                guard (48...57).contains(bytes[index]) else { return nil }
                value = value * 10 + Int(bytes[index] - 48)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13), let minute = number(14..<16),
            let second = number(17..<19), (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var fraction = 0.0
        if bytes.count > 20 {
            guard bytes[19] == UInt8(ascii: "."), bytes.count > 21, let digits = number(20..<(bytes.count - 1)) else { return nil }
            fraction = Double(digits) / pow(10, Double(bytes.count - 21))
        } else if bytes[19] != UInt8(ascii: "Z") {
            return nil
        }
        return Date(timeIntervalSince1970: Double(civilDays(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second) + fraction)
    }

    /// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's algorithm).
    static func civilDays(year: Int, month: Int, day: Int) -> Int {
        let shifted = month <= 2 ? year - 1 : year
        let era = (shifted >= 0 ? shifted : shifted - 399) / 400
        let yearOfEra = shifted - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

extension BackupSummary {
    /// The moment a backup id names: `20261122T013000.250Z` or `20261122T013000Z`.
    public static func idDate(_ id: String) -> Date? {
        let bytes = Array(id.utf8)
        guard bytes.count == 16 || bytes.count == 20, bytes[8] == UInt8(ascii: "T"), bytes.last == UInt8(ascii: "Z") else { return nil }
        let text = String(decoding: bytes[0..<4], as: UTF8.self) + "-" + String(decoding: bytes[4..<6], as: UTF8.self) + "-"
            + String(decoding: bytes[6..<8], as: UTF8.self) + "T" + String(decoding: bytes[9..<11], as: UTF8.self) + ":"
            + String(decoding: bytes[11..<13], as: UTF8.self) + ":" + String(decoding: bytes[13..<15], as: UTF8.self)
            + String(decoding: bytes[15...], as: UTF8.self)
        return SignatureTime.parse(text)
    }
}
