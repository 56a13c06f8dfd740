#ifndef OSMOSE_CGLIBCEXTRAS_SHIM_H
#define OSMOSE_CGLIBCEXTRAS_SHIM_H

/* glibc functions the Glibc module does not expose: mallopt (malloc.h) and the
   GNU extensions sync_file_range and O_DIRECT (fcntl.h). */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

/* O_DIRECT is a GNU macro Swift does not import through the Glibc module. */
static inline int osmose_o_direct(void) { return O_DIRECT; }

#endif
