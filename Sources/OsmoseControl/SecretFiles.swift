import ArgumentParser
import Glibc
import Store

/// Writes key material to a new file, mode 0600, and syncs it: never overwrites
/// (O_EXCL), so a key is never replaced by accident.
/// - Throws: `ValidationError` naming the file and the system's reason.
func writeSecretFile(_ path: String, _ bytes: [UInt8]) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw ValidationError("cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(descriptor) }
    guard write(descriptor, bytes, bytes.count) == bytes.count, fsync(descriptor) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(path)
        throw ValidationError("writing \(path) failed: \(reason)")
    }
}

/// ``writeSecretFile(_:_:)`` for a key's text form.
func writeSecretFile(_ path: String, _ text: String) throws {
    var bytes = Array(text.utf8)
    defer { for index in bytes.indices { bytes[index] = 0 } }
    try writeSecretFile(path, bytes)
}

/// Overwrites a key file with zeros, syncs it, and removes it. (On copy-on-write or
/// journaling file systems the old blocks may survive: keep key files on tmpfs or
/// in encrypted credentials.)
func shredFile(_ path: String) throws {
    let descriptor = open(path, O_WRONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw ValidationError("cannot open \(path): \(String(cString: strerror(errno)))") }
    var status = stat()
    fstat(descriptor, &status)
    let zeros = [UInt8](repeating: 0, count: max(Int(status.st_size), 1))
    let written = write(descriptor, zeros, zeros.count)
    let synced = fsync(descriptor)
    close(descriptor)
    guard written == zeros.count, synced == 0, unlink(path) == 0 else {
        throw ValidationError("shredding \(path) failed: \(String(cString: strerror(errno)))")
    }
}

/// Records a key whose private half was just written to `file` (nil: nothing was
/// written), in one transaction; if the record fails, the file is removed, so no
/// key lingers that the keyring does not know.
func recordingKey(
    writtenTo file: String?, _ options: GlobalOptions, _ body: @escaping @Sendable (isolated Connection) throws -> Int
) async throws -> Int {
    do {
        return try await options.withConnection { connection in try await connection.transaction { try body($0) } }
    } catch {
        if let file { unlink(file) }
        throw error
    }
}
