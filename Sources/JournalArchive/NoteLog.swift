import Foundation
import Journal

/// Splits a log of signed notes, each followed by one empty line (the witness log
/// format: text lines, an empty line, signature lines starting with "— ", an empty
/// line), as it arrives block by block.
struct NoteLogSplitter {
    private var current: [UInt8] = []
    private var lineStart = 0
    private var inSignatures = false
    private var signatureLines = 0
    /// Lines read so far, for messages.
    private(set) var lineNumber = 0

    /// Feeds a block; calls `note` with each note it completes (its bytes, final newline included).
    mutating func feed(_ block: RawSpan, _ note: ([UInt8]) throws -> Void) throws {
        try block.withUnsafeBytes { bytes in
            var start = 0
            while start < bytes.count {
                guard let newline = bytes[start...].firstIndex(of: 0x0A) else {
                    current.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...]))
                    return
                }
                current.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...newline]))
                try endLine(note)
                start = newline + 1
            }
        }
    }

    private mutating func endLine(_ note: ([UInt8]) throws -> Void) throws {
        lineNumber += 1
        let length = current.count - 1 - lineStart
        if !inSignatures {
            if length == 0 {
                guard lineStart > 0 else { throw JournalArchiveError(.verification, "checkpoints line \(lineNumber): an empty line where a note should start") }
                inSignatures = true
            }
        } else if length == 0 {
            guard signatureLines > 0 else { throw JournalArchiveError(.verification, "checkpoints line \(lineNumber): a note without signature") }
            current.removeLast()
            try note(current)
            current.removeAll(keepingCapacity: true)
            inSignatures = false
            signatureLines = 0
            lineStart = 0
            return
        } else {
            guard current[lineStart..<current.count - 1].starts(with: Self.signaturePrefix) else {
                throw JournalArchiveError(.verification, "checkpoints line \(lineNumber): expected a signature line")
            }
            signatureLines += 1
        }
        lineStart = current.count
    }

    /// Checks that the log ended after a complete note.
    func finish() throws {
        guard current.isEmpty else { throw JournalArchiveError(.verification, "checkpoints: the last note is incomplete") }
    }

    private static let signaturePrefix = Array("\u{2014} ".utf8)
}

/// The facts of a checkpoint note read without checking its signature: what the
/// replay compares with the tree. Parsed from bytes, without building strings, as a
/// month can hold millions of checkpoints.
struct CheckpointFacts {
    /// The origin line.
    let origin: [UInt8]
    /// The tree size.
    let size: UInt64
    /// The root hash.
    let root: [UInt8]
    /// The `osmose-chain` hash.
    let chain: [UInt8]
    /// The `osmose-time` text.
    let time: [UInt8]

    /// Parses the text lines of `note` (up to the empty line).
    /// - Throws: ``JournalArchiveError`` `.verification` naming what is malformed.
    init(note: [UInt8]) throws {
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for index in note.indices where note[index] == 0x0A {
            if index == start { break }
            lines.append(note[start..<index])
            start = index + 1
        }
        guard lines.count >= 3, !lines[0].isEmpty else { throw JournalArchiveError(.verification, "a checkpoint has an origin, a size and a root hash") }
        guard let size = UInt64(String(decoding: lines[1], as: UTF8.self)), lines[1].first != 0x30 || lines[1].count == 1 else {
            throw JournalArchiveError(.verification, "a checkpoint's size line is not a decimal number")
        }
        guard let root = Data(base64Encoded: Data(lines[2])), root.count == 32 else {
            throw JournalArchiveError(.verification, "a checkpoint's root line is not base64 of 32 bytes")
        }
        var chain: [UInt8]?
        var time: [UInt8] = []
        for line in lines.dropFirst(3) {
            if line.starts(with: Self.chainPrefix) {
                chain = Data(base64Encoded: Data(line.dropFirst(Self.chainPrefix.count))).map(Array.init)
            } else if line.starts(with: Self.timePrefix) {
                time = Array(line.dropFirst(Self.timePrefix.count))
            }
        }
        guard let chain, chain.count == 32 else { throw JournalArchiveError(.verification, "a checkpoint of size \(size) has no osmose-chain line of 32 bytes") }
        origin = Array(lines[0])
        self.size = size
        self.root = Array(root)
        self.chain = chain
        self.time = time
    }

    private static let chainPrefix = Array("osmose-chain ".utf8)
    private static let timePrefix = Array("osmose-time ".utf8)
}
