import Foundation
import Glibc

/// A file that one thread writes while another reads it back as it grows, so that
/// the read-back verification of an archive overlaps its writing instead of
/// following it: the wall time becomes the longer of the two, not their sum.
///
/// The writer (``EncryptedArchiveWriter`` made with `readAlong:`) opens a read
/// descriptor on the file it creates, says how far it has written after every write,
/// and says when it has finished or failed. The reader
/// (``EncryptedArchiveReader/init(growing:identities:)``) reads the file itself
/// through that descriptor, never the writer's memory, and waits at the end of what
/// was written until more is, or until the writer ends. A reader that gives up
/// (``abandon()``) makes the writer's next write fail, so a bad archive is not
/// written to its end.
///
/// `@unchecked Sendable`: every mutable field is read and written under `condition`.
public final class GrowingFile: @unchecked Sendable {
    /// How a wait for more bytes ended.
    public enum Growth: Equatable, Sendable {
        /// Bytes beyond the offset asked about are written.
        case more
        /// The writer finished: nothing beyond what is written will come.
        case end
        /// The writer failed, saying why.
        case failed(String)
    }

    private let condition = NSCondition()
    private var descriptor: Int32 = -1
    private var written: Int64 = 0
    private var ending: Growth?
    private var gaveUp = false
    private var gaveUpFirst = false
    /// How many times the reader waited at the end of what was written (for tests).
    package private(set) var readerWaits = 0

    /// The file's final path, for messages.
    public let path: String

    /// A file not created yet, to be written to `path`.
    public init(path: String) { self.path = path }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    // MARK: the writer's side

    /// The file is created: `readDescriptor` reads it (this object closes it).
    func opened(readDescriptor: Int32) {
        condition.lock()
        descriptor = readDescriptor
        condition.broadcast()
        condition.unlock()
    }

    /// `bytes` bytes are written in all.
    func grew(to bytes: Int64) {
        condition.lock()
        written = bytes
        condition.broadcast()
        condition.unlock()
    }

    /// The writer has written its last byte.
    func finished() { end(.end) }

    /// The writer stopped without finishing (the first ending said is kept; an
    /// ending after ``finished()`` changes nothing).
    public func failed(_ reason: String) { end(.failed(reason)) }

    private func end(_ growth: Growth) {
        condition.lock()
        if ending == nil { ending = growth }
        condition.broadcast()
        condition.unlock()
    }

    /// True once the reader has given up: the writer stops.
    public var abandoned: Bool {
        condition.lock()
        defer { condition.unlock() }
        return gaveUp
    }

    /// True when the reader gave up before the writer ended: then the reader's
    /// problem is why the writer stopped; otherwise the writer's own failure is.
    public var readerStoppedFirst: Bool {
        condition.lock()
        defer { condition.unlock() }
        return gaveUpFirst
    }

    // MARK: the reader's side

    /// Waits until the writer has created the file and returns the descriptor that
    /// reads it (still owned by this object).
    /// - Throws: ``ArchiveError`` when the writer failed before creating it.
    func readDescriptor() throws -> Int32 {
        condition.lock()
        defer { condition.unlock() }
        while descriptor < 0 && ending == nil { condition.wait() }
        guard descriptor >= 0 else {
            if case .failed(let reason) = ending { throw ArchiveError("\(path) was not written: \(reason)") }
            throw ArchiveError("\(path) was not written")
        }
        return descriptor
    }

    /// Waits until more than `offset` bytes are written, or the writer ends, or the
    /// reader itself gave up (``abandon()`` from another thread).
    func wait(beyond offset: Int64) -> Growth {
        condition.lock()
        defer { condition.unlock() }
        if written <= offset && ending == nil && !gaveUp { readerWaits += 1 }
        while written <= offset && ending == nil && !gaveUp { condition.wait() }
        if written > offset { return .more }
        if let ending { return ending }
        return .failed("the read-back gave up")
    }

    /// The reader gives up (it found a problem, or stopped): the writer's next write fails.
    public func abandon() {
        condition.lock()
        if ending == nil { gaveUpFirst = true }
        gaveUp = true
        condition.broadcast()
        condition.unlock()
    }
}
