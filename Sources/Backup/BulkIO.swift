internal import CGlibcExtras
import Glibc

/// Settings for processes that stream gigabytes through buffers of about a megabyte
/// (backups, restores, verification).
public enum BulkIO {
    /// glibc serves allocations of 128 KiB and more with mmap and returns freed heap
    /// to the kernel eagerly; every megabyte buffer of a stream then costs page faults
    /// and zeroing (measured: half of `backup verify`'s time went to the kernel).
    /// Keeping such buffers on the heap removes that. Called once at the start of
    /// the backup commands; memory stays bounded by the largest live buffers.
    public static func tuneAllocator() {
        _ = mallopt(M_MMAP_THRESHOLD, 64 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 256 << 20)
    }

    /// Flushes the file system holding `path` (one `syncfs` after writing many files,
    /// instead of an `fsync` per file).
    static func syncFileSystem(of path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ArchiveError("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        guard syncfs(descriptor) == 0 else { throw ArchiveError("syncing the file system of \(path) failed: \(String(cString: strerror(errno)))") }
    }
}
