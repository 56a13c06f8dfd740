internal import COpenSSL

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
