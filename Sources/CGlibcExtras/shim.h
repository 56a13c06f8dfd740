#ifndef OSMOSE_CGLIBCEXTRAS_SHIM_H
#define OSMOSE_CGLIBCEXTRAS_SHIM_H

/* glibc functions the Glibc module does not expose: mallopt (malloc.h) and the
   GNU extension sync_file_range (fcntl.h). */
#define _GNU_SOURCE 1
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#endif
