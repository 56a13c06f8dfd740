internal import CZstd
import Foundation

/// zstd compression of an archive's tar stream in independent frames: the writer
/// ends a frame before and after each large member (and after every few MiB of small ones), so
/// that a reader can begin at any frame's first byte, decrypting from the age chunk
/// that holds it, and read only the members it needs (``ArchiveMember/frame``). The
/// frames follow one another in one zstd stream, which `zstd -d`, `bsdtar` and
/// libarchive read whole as before.
///
/// Not thread-safe: one writer's thread uses it (zstd's own worker threads, with
/// `threads` > 1, are zstd's).
final class ZstdFrames {
    /// A member this large starts a frame of its own.
    static let largeMember: Int64 = 1 << 20
    /// Small members share a frame until it has taken this much input.
    static let frameInput: Int64 = 8 << 20

    private let context: OpaquePointer
    private var output: [UInt8]
    /// Compressed bytes handed to the sink so far: the offset of the next byte.
    private var compressedBytes: Int64 = 0
    /// Where the current frame starts, in the compressed stream.
    private(set) var frameStart: Int64 = 0
    /// Input taken by the current frame so far.
    private(set) var inputInFrame: Int64 = 0

    /// A compressor at zstd `level`, on `threads` worker threads when more than one.
    /// - Throws: ``ArchiveError`` when zstd cannot allocate or refuses a parameter.
    init(level: Int, threads: Int) throws {
        guard let context = ZSTD_createCCtx() else { throw ArchiveError("zstd could not allocate a compression context") }
        self.context = context
        output = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
        let status = ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level))
        guard ZSTD_isError(status) == 0 else { throw ArchiveError("zstd refused compression level \(level): \(Self.describe(status))") }
        // No frame checksum (zstd's default, and libarchive's before): age authenticates
        // every chunk and each member's SHA-256 is checked; a checksum would cost every
        // reader a pass over the decompressed bytes for nothing.
        if threads > 1 {
            let workers = ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, Int32(threads))
            guard ZSTD_isError(workers) == 0 else { throw ArchiveError("zstd refused \(threads) worker threads: \(Self.describe(workers))") }
        }
    }

    deinit { ZSTD_freeCCtx(context) }

    static func describe(_ code: Int) -> String { String(cString: ZSTD_getErrorName(code)) }

    /// Compresses `input` into the current frame; hands whatever compressed bytes are ready to `sink`.
    func compress(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard input.count > 0 else { return }
        // Memory: zstd reads `input` only during the calls below (with workers it copies
        // what it has not compressed yet into its own buffers before returning).
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while source.pos < source.size {
            try step(&source, ZSTD_e_continue, sink: sink)
        }
        inputInFrame += Int64(input.count)
    }

    /// Ends the current frame (nothing when it took no input): every byte is then
    /// handed over, and the next input starts a new frame at ``compressedBytes``.
    func endFrame(sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard inputInFrame > 0 else { return }
        var source = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try step(&source, ZSTD_e_end, sink: sink) != 0 {}
        inputInFrame = 0
        frameStart = compressedBytes
    }

    /// One call of ZSTD_compressStream2; returns what zstd says is left to flush.
    @discardableResult
    private func step(_ source: inout ZSTD_inBuffer, _ directive: ZSTD_EndDirective, sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        // Memory: zstd writes at most `size` bytes into `output` during the call and
        // reports how many (`pos`); only those are handed to the sink.
        let (remaining, produced) = output.withUnsafeMutableBytes { buffer in
            var destination = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
            let remaining = ZSTD_compressStream2(context, &destination, &source, directive)
            return (remaining, destination.pos)
        }
        guard ZSTD_isError(remaining) == 0 else { throw ArchiveError("zstd: \(Self.describe(remaining))") }
        if produced > 0 {
            try output.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
            compressedBytes += Int64(produced)
        }
        return remaining
    }
}
