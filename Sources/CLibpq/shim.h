#ifndef OSMOSE_CLIBPQ_SHIM_H
#define OSMOSE_CLIBPQ_SHIM_H

#include <libpq-fe.h>
#include <poll.h>

#endif
