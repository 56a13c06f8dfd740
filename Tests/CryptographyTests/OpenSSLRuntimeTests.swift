import Cryptography
import Testing

@Suite("OpenSSL's set-up in every process")
struct OpenSSLRuntimeTests {
    /// Its exit-time cleanup freed OpenSSL's global state while threads that had used
    /// OpenSSL were ending (a connection's thread after proofs, the verifier's thread),
    /// which corrupted the heap at exit (issue 23). The constructor in
    /// CCryptographyShims must have run, first, in this process as in the executables.
    @Test("OpenSSL was initialised before main, without its exit-time cleanup")
    func noCleanupAtExit() {
        #expect(OpenSSLRuntime.keepsStateUntilExit)
    }
}
