internal import COpenSSL
import Glibc

/// Bytes of key material, zeroed when released.
///
/// The bytes live in their own allocation, never in a Swift array that could be
/// copied and freed without being wiped. `description` and `debugDescription` show
/// only the length. Read the bytes with ``withUnsafeBytes(_:)``.
public final class SecretBytes: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    // Safe to share: the allocation is written only in init and deinit; between
    // them it is only read.
    private nonisolated(unsafe) let storage: UnsafeMutableRawBufferPointer

    /// The number of bytes.
    public var count: Int { storage.count }

    /// Copies `bytes` into a fresh allocation. The caller should wipe its own copy
    /// where it can.
    public convenience init(_ bytes: some Collection<UInt8>) {
        let buffer = Self.allocate(count: bytes.count)
        buffer.copyBytes(from: bytes)
        self.init(adopting: buffer, count: bytes.count)
    }

    /// Fills a new secret of `count` bytes by calling `fill` on its buffer. If `fill`
    /// throws, the buffer is wiped and freed before the error propagates.
    convenience init(count: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        let buffer = Self.allocate(count: count)
        do {
            try fill(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        } catch {
            OPENSSL_cleanse(buffer.baseAddress, buffer.count)
            buffer.deallocate()
            throw error
        }
        self.init(adopting: buffer, count: count)
    }

    private init(adopting buffer: UnsafeMutableRawBufferPointer, count: Int) {
        storage = buffer
        byteCount = count
    }

    private static func allocate(count: Int) -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        return buffer
    }

    private let byteCount: Int

    /// Generates `count` cryptographically secure random bytes.
    public static func random(count: Int) throws -> SecretBytes {
        try SecretBytes(count: count) { buffer in try SecureRandom.fill(buffer) }
    }

    /// Calls `body` with a read-only view of the bytes. Do not let the view escape.
    func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<byteCount]))
    }

    /// Compares with another secret in constant time.
    public func constantTimeEquals(_ other: SecretBytes) -> Bool {
        withUnsafeBytes { mine in other.withUnsafeBytes { theirs in ConstantTime.equals(mine, theirs) } }
    }

    /// A copy of the bytes as an array, for formats that need one (e.g. encoding a
    /// key file). Wipe the array when done with ``ConstantTime/wipe(_:)``.
    public func exposedCopy() -> [UInt8] { withUnsafeBytes { Array($0) } }

    deinit {
        OPENSSL_cleanse(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    public var description: String { "SecretBytes(\(byteCount) bytes, redacted)" }
    public var debugDescription: String { description }
}

extension SecretBytes {
    /// Reads a key file (a systemd credential, a master key) straight into wiped memory.
    ///
    /// Refuses symbolic links, files that are not regular, and files larger than
    /// `maximumSize`, so a misconfigured path cannot make a daemon read a device or
    /// a huge file.
    /// - Throws: ``CryptoError/Code/invalidKey`` naming the path and the reason.
    public static func contentsOfFile(_ path: String, maximumSize: Int = 64 * 1024) throws -> SecretBytes {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else {
            throw CryptoError(.invalidKey, "cannot open key file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw CryptoError(.invalidKey, "key file \(path) is not a regular file")
        }
        let size = Int(status.st_size)
        guard size <= maximumSize else {
            throw CryptoError(.invalidKey, "key file \(path) is \(size) bytes, more than the \(maximumSize) allowed")
        }
        return try SecretBytes(count: size) { buffer in
            var offset = 0
            while offset < size {
                let got = read(descriptor, buffer.baseAddress! + offset, size - offset)
                if got < 0 && errno == EINTR { continue }
                guard got > 0 else { throw CryptoError(.invalidKey, "key file \(path) could not be read completely") }
                offset += got
            }
        }
    }
}
