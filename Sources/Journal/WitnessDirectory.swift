import Foundation

/// A witness location outside the database: a directory holding
///
/// - `checkpoints.log`: every signed checkpoint note, appended in issue order, each
///   followed by one empty line (a note is text lines, an empty line, then
///   signature lines starting with "— ", so the extra empty line ends it);
/// - `checkpoint`: the latest note alone, replaced atomically (the path C2SP
///   tlog-tiles clients fetch).
///
/// Appends are a single `write` on an `O_APPEND` descriptor followed by `fsync`.
public struct WitnessDirectory: Sendable, Hashable {
    /// The directory.
    public let path: String

    /// A witness directory at `path` (created on first write).
    public init(path: String) { self.path = path }

    /// The append-only log of every note.
    public var logPath: String { path + "/checkpoints.log" }
    /// The latest note.
    public var latestPath: String { path + "/checkpoint" }

    /// Appends `note` to the log and makes it the latest.
    /// - Throws: ``JournalError`` `.witness` naming the path and the system error.
    public func append(_ note: String) throws {
        try append(notes: [note])
    }

    /// Appends several notes in order with one write, then replaces the latest.
    public func append(notes: [String]) throws {
        guard let last = notes.last else { return }
        try createDirectory()
        let fd = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw failure("cannot open", logPath) }
        defer { close(fd) }
        let bytes = Array(notes.map { $0 + "\n" }.joined().utf8)
        try writeAll(fd, bytes, logPath)
        guard fsync(fd) == 0 else { throw failure("cannot sync", logPath) }
        try replaceLatest(last)
    }

    private func createDirectory() throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        } catch {
            throw JournalError(.witness, "cannot create the witness directory \(path): \(error.localizedDescription)")
        }
    }

    private func replaceLatest(_ note: String) throws {
        let temporary = path + "/.checkpoint.\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw failure("cannot create", temporary) }
        do {
            try writeAll(fd, Array(note.utf8), temporary)
            guard fsync(fd) == 0 else { throw failure("cannot sync", temporary) }
            close(fd)
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        guard rename(temporary, latestPath) == 0 else { throw failure("cannot rename into", latestPath) }
        let directory = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8], _ file: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw failure("cannot write", file)
            }
            offset += written
        }
    }

    private func failure(_ what: String, _ file: String) -> JournalError {
        JournalError(.witness, "\(what) \(file): \(String(cString: strerror(errno)))")
    }

    /// The log's notes and the latest note, read so that they agree while
    /// osmose-journald may be writing, for ``JournalVerifier``'s witness stage.
    ///
    /// The daemon appends to the log, then replaces `checkpoint`: a reader between the
    /// two sees the log one note ahead of it, and a reader of the log then of
    /// `checkpoint` can see `checkpoint` one note ahead of the log it read. Either
    /// would be reported as a `checkpoint` that is not the log's last note. So this
    /// reads `checkpoint`, the log, then `checkpoint` again, and accepts the read when
    /// both reads of `checkpoint` are the log's last note (or both are absent with an
    /// empty log); otherwise it waits `pause` and reads again, at most `attempts`
    /// times, then returns the last read as it is, for the verifier to report: a
    /// `checkpoint` that stays behind its log (a daemon stopped between the two
    /// writes, or a file put back by hand) is still a failure.
    /// - Returns: the directory's path, its notes, and the latest note (nil when absent).
    /// - Throws: ``JournalError`` `.witness` when the log is unreadable or malformed.
    public func read(attempts: Int = 20, pause: Duration = .milliseconds(50)) async throws -> (name: String, notes: [String], latest: String?) {
        var attempt = 0
        while true {
            attempt += 1
            let before = latest()
            let notes = try self.notes()
            let after = latest()
            if (before == after && after == notes.last) || attempt >= attempts { return (path, notes, after) }
            try await Task.sleep(for: pause)
        }
    }

    /// The `checkpoint` file's text; nil when it does not exist or cannot be read.
    public func latest() -> String? {
        FileManager.default.contents(atPath: latestPath).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The notes in the log, in order; an empty list when the log does not exist.
    /// - Throws: ``JournalError`` `.witness` when the log is unreadable or a record is malformed.
    public func notes() throws -> [String] {
        guard FileManager.default.fileExists(atPath: logPath) else { return [] }
        guard let data = FileManager.default.contents(atPath: logPath) else {
            throw JournalError(.witness, "cannot read \(logPath)")
        }
        guard let text = String(validating: data, as: UTF8.self) else { throw JournalError(.witness, "\(logPath) is not UTF-8") }
        return try Self.parseLog(text, name: logPath)
    }

    /// Splits a log into its notes.
    static func parseLog(_ text: String, name: String) throws -> [String] {
        var notes: [String] = []
        var current = ""
        var inSignatures = false
        var lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            lineNumber += 1
            if !inSignatures {
                current += line + "\n"
                if line.isEmpty {
                    guard current != "\n" else { throw JournalError(.witness, "\(name):\(lineNumber): an empty line where a note should start") }
                    inSignatures = true
                }
            } else if line.isEmpty {
                notes.append(current)
                current = ""
                inSignatures = false
            } else {
                guard line.hasPrefix("— ") else { throw JournalError(.witness, "\(name):\(lineNumber): expected a signature line") }
                current += line + "\n"
            }
        }
        guard current.isEmpty, text.isEmpty || text.hasSuffix("\n") else {
            throw JournalError(.witness, "\(name): the last note is incomplete (an interrupted write?)")
        }
        return notes
    }
}
