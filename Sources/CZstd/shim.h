#ifndef OSMOSE_CZSTD_SHIM_H
#define OSMOSE_CZSTD_SHIM_H

/* zstd's streaming API, for archives written as independent frames (one starting
   before each large member) that a restore can start reading in the middle of. */
#include <zstd.h>

#endif
