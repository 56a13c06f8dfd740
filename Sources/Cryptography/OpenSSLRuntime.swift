internal import CCryptographyShims

/// How OpenSSL is set up in this process.
public enum OpenSSLRuntime {
    /// True when OpenSSL was initialised, before anything else could, without its
    /// exit-time cleanup: that cleanup freed OpenSSL's global state while threads
    /// that had used OpenSSL were still ending, which corrupted the heap at exit
    /// (see `Sources/CCryptographyShims/shim.c`).
    public static var keepsStateUntilExit: Bool { osmose_openssl_keeps_state_until_exit() == 1 }
}
