internal import CGlibcExtras

/// Settings for processes that stream gigabytes through buffers of about a megabyte
/// (backups, restores, verification).
public enum BulkIO {
    /// glibc serves allocations of 128 KiB and more with mmap and returns freed heap
    /// to the kernel eagerly; every megabyte buffer of a stream then costs page faults
    /// and zeroing (measured: half of `backup verify`'s time went to the kernel).
    /// Keeping such buffers on the heap removes that. Called once at the start of
    /// the backup commands; memory stays bounded by the largest live buffers.
    public static func tuneAllocator() {
        osmose_keep_buffers_on_heap()
    }
}
