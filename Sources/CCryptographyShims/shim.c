#include "CCryptographyShims.h"

#define OPENSSL_API_COMPAT 30000
#define OPENSSL_NO_DEPRECATED 1
#include <openssl/crypto.h>

/*
 * By default OpenSSL registers OPENSSL_cleanup() with atexit() the first time it
 * is initialised. At exit that cleanup frees OpenSSL's global state (the thread
 * event handlers, the error-state key, the default library context) while other
 * threads may still be running or ending: a database connection's thread that
 * computed Merkle proofs, the journal verifier's thread, a daemon's worker. Each
 * such thread frees its own OpenSSL state (error queue, digest contexts) when it
 * ends, through structures the cleanup has just freed: glibc then aborts with
 * "double free or corruption (fasttop)" or "malloc_consolidate(): unaligned
 * fastbin chunk detected" (issue 23: `osmosectl journal export` and
 * `osmosectl journal prove consistency`, whose connection thread ends while the
 * main thread exits), and LeakSanitizer reports the error state as leaked.
 * OpenSSL's maintainers' advice for threaded programs is not to clean up at exit
 * at all (openssl/openssl#6214, #25294): the kernel reclaims the memory.
 *
 * OPENSSL_INIT_NO_ATEXIT only takes effect in the call that initialises OpenSSL,
 * so it runs as a constructor: before main, before libpq or any Swift code can
 * initialise OpenSSL without it, in every executable and test bundle that links
 * the Cryptography module.
 */
static int keeps_state_until_exit;

__attribute__((constructor)) static void osmose_openssl_initialise_without_exit_cleanup(void) {
    keeps_state_until_exit = OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL) == 1;
}

int osmose_openssl_keeps_state_until_exit(void) {
    return keeps_state_until_exit;
}
