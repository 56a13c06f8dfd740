#ifndef OSMOSE_CGLIBCEXTRAS_SHIM_H
#define OSMOSE_CGLIBCEXTRAS_SHIM_H

/* glibc functions the Glibc module does not expose: mallopt (malloc.h) and
   syncfs (a GNU extension of unistd.h). */
#define _GNU_SOURCE 1
#include <malloc.h>
#include <unistd.h>

#endif
