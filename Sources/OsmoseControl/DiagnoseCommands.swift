import ArgumentParser
import Foundation
import Glibc
import Systemd

struct DiagnoseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diagnose",
        abstract: "Check what the environment gives the suite.",
        subcommands: [SystemdEnvironment.self]
    )

    struct SystemdEnvironment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "systemd",
            abstract: "Show what systemd passed this process: notify socket, watchdog, sockets, credential names.",
            discussion: """
                Run it in place of a daemon (e.g. with systemd-run or systemd-socket-activate) to check a \
                unit's set-up. Never prints credential contents.
                """)

        @Flag(help: "Send READY=1 with a status line, as a daemon does when started.") var notifyReady = false
        @Flag(help: "Accept one connection on the first passed socket, reply 'osmose ok', and exit.") var acceptOne = false
        @Flag(help: "Print the result as JSON.") var json = false

        struct Report: Encodable {
            struct Socket: Encodable {
                let fileDescriptor: Int32
                let name: String
                let unixStreamListener: Bool
            }
            let notifySocket: String?
            let watchdogMilliseconds: Int64?
            let sockets: [Socket]
            let credentials: [String]
        }

        func run() async throws {
            try await reportingFailures {
                let notifier = SystemdNotifier()
                let sockets = try SocketActivation.sockets()
                let watchdog = notifier.watchdogTimeout.map { $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000 }
                let report = Report(
                    notifySocket: notifier.socketAddress, watchdogMilliseconds: watchdog,
                    sockets: sockets.map { .init(fileDescriptor: $0.fileDescriptor, name: $0.name, unixStreamListener: SocketActivation.isUnixStreamListener($0)) },
                    credentials: Credentials().names())
                if json {
                    try printJSON(report)
                } else {
                    print("notify socket: \(report.notifySocket ?? "none (not started by systemd with Type=notify)")")
                    print("watchdog:      \(report.watchdogMilliseconds.map { "\($0) ms" } ?? "off")")
                    print("sockets:       \(report.sockets.isEmpty ? "none" : report.sockets.map { "fd \($0.fileDescriptor) \($0.name)\($0.unixStreamListener ? " (unix stream, listening)" : "")" }.joined(separator: ", "))")
                    print("credentials:   \(report.credentials.isEmpty ? "none" : report.credentials.joined(separator: ", "))")
                }
                if notifyReady { try notifier.ready(status: "osmosectl diagnose: \(report.sockets.count) socket(s)") }
                if acceptOne, let first = sockets.first {
                    let client = accept(first.fileDescriptor, nil, nil)
                    guard client >= 0 else { throw ValidationError("accept on fd \(first.fileDescriptor) failed: \(String(cString: strerror(errno)))") }
                    let reply = Array("osmose ok\n".utf8)
                    _ = reply.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                    close(client)
                }
            }
        }
    }
}

struct VersionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the suite's version.")

    @Flag(help: "Print as JSON.") var json = false

    func run() async throws {
        if json {
            try printJSON(["version": versionString, "program": "osmosectl"])
        } else {
            print("osmosectl \(versionString)")
        }
    }
}
