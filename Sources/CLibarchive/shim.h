#ifndef OSMOSE_CLIBARCHIVE_SHIM_H
#define OSMOSE_CLIBARCHIVE_SHIM_H

#include <archive.h>
#include <archive_entry.h>

#endif
