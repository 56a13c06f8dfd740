#ifndef OSMOSE_CCRYPTOGRAPHYSHIMS_H
#define OSMOSE_CCRYPTOGRAPHYSHIMS_H

/// 1 when this process initialised OpenSSL with OPENSSL_INIT_NO_ATEXIT before
/// anything else initialised it (see shim.c), else 0.
int osmose_openssl_keeps_state_until_exit(void);

#endif
