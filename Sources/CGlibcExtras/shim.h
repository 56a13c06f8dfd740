#ifndef OSMOSE_CGLIBCEXTRAS_SHIM_H
#define OSMOSE_CGLIBCEXTRAS_SHIM_H

/* glibc functions the Glibc module does not expose: mallopt (malloc.h) and the
   GNU extension sync_file_range (fcntl.h). */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

/* Keeps allocations below 64 MiB on the heap and freed heap with the process:
   glibc otherwise serves each megabyte buffer of a stream with a fresh mmap, whose
   pages the kernel faults in and zeroes every time (measured: half of a backup
   verify's time, a quarter of osmose-journald's own). */
static inline void osmose_keep_buffers_on_heap(void) {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

#endif
