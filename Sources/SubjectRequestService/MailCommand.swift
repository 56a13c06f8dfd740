import Foundation
import Glibc

/// A sendmail-compatible program (`sendmail -t`, msmtp…) given the message, its
/// headers included, on standard input; nothing when none is configured.
struct MailCommand: Sendable {
    /// The program and its arguments.
    let command: [String]
    /// The recipients and the sender, plain addresses (checked by the configuration).
    let to: [String]
    let from: String

    var isConfigured: Bool { !command.isEmpty && !to.isEmpty }

    /// The message: headers, a blank line, the body (UTF-8, quoted-printable free: 8bit).
    func message(subject: String, body: String) -> String {
        let encodedSubject = "=?UTF-8?B?\(Data(subject.utf8).base64EncodedString())?="
        return """
            From: \(from)\r
            To: \(to.joined(separator: ", "))\r
            Subject: \(encodedSubject)\r
            MIME-Version: 1.0\r
            Content-Type: text/plain; charset=utf-8\r
            Content-Transfer-Encoding: 8bit\r
            Auto-Submitted: auto-generated\r
            \r

            """ + body
    }

    /// Runs the program with the message on its standard input and waits for it, off the cooperative pool.
    /// - Throws: ``MailError`` when it cannot start or exits non-zero.
    func send(subject: String, body: String) async throws {
        let input = Array(message(subject: subject, body: body).utf8)
        let command = self.command
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                continuation.resume(with: Result { try Self.run(command, input: input) })
            }
            thread.start()
        }
    }

    static func run(_ command: [String], input: [UInt8]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let pipe = Pipe()
        process.standardInput = pipe
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw MailError(message: "cannot start \(command[0]): \(error.localizedDescription)")
        }
        pipe.fileHandleForWriting.write(Data(input))
        try? pipe.fileHandleForWriting.close()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw MailError(message: "\(command[0]) exited with status \(process.terminationStatus)") }
    }
}

/// The mail command failed.
struct MailError: Error, CustomStringConvertible {
    let message: String
    var description: String { "dsar.mail: \(message)" }
}
