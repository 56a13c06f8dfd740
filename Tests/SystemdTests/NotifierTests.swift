import Foundation
import Logging
import ServiceLifecycle
import Systemd
import Testing
import TestSupport

@Suite("sd_notify over a real datagram socket")
struct NotifierTests {
    @Test("READY, STATUS, WATCHDOG and STOPPING reach a filesystem or abstract socket", arguments: [false, true])
    func notify(abstract: Bool) throws {
        let receiver = try DatagramSocket(abstract: abstract)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.address])
        #expect(notifier.isEnabled)
        try notifier.ready(status: "journal at 42 entries")
        let ready = try #require(receiver.receive()).split(separator: "\n").map(String.init)
        #expect(ready.contains("READY=1"))
        #expect(ready.contains("STATUS=journal at 42 entries"))
        #expect(ready.contains("MAINPID=\(getpid())"))
        try notifier.status("two\nlines")
        #expect(receiver.receive() == "STATUS=two lines")
        try notifier.watchdog()
        #expect(receiver.receive() == "WATCHDOG=1")
        try notifier.stopping()
        #expect(receiver.receive() == "STOPPING=1")
    }

    @Test("Without NOTIFY_SOCKET nothing is sent and nothing fails; a malformed one is an error")
    func disabledAndMalformed() throws {
        let disabled = SystemdNotifier(environment: [:])
        #expect(!disabled.isEnabled)
        try disabled.ready()
        let error = #expect(throws: SystemdError.self) { try SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]).ready() }
        #expect(error?.code == .notifyFailed)
        let missing = #expect(throws: SystemdError.self) {
            try SystemdNotifier(environment: ["NOTIFY_SOCKET": "/nonexistent/osmose/notify"]).ready()
        }
        #expect(missing?.code == .notifyFailed)
    }

    @Test("The watchdog timeout is read only when WATCHDOG_PID names this process")
    func watchdogEnvironment() {
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "3000000"]).watchdogTimeout == .seconds(3))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "\(getpid())"]).watchdogTimeout == .seconds(3))
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"]).watchdogTimeout == nil)
        #expect(SystemdNotifier(environment: ["WATCHDOG_USEC": "zero"]).watchdogTimeout == nil)
    }

    @Test("The watchdog service pings at half the interval and says STOPPING on graceful shutdown")
    func watchdogService() async throws {
        let receiver = try DatagramSocket(abstract: false)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": "200000"])
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let group = ServiceGroup(services: [SystemdWatchdogService(notifier: notifier, logger: logger)], logger: logger)
        async let running: Void = group.run()
        #expect(try await offThePool { receiver.receive() } == "WATCHDOG=1")
        #expect(try await offThePool { receiver.receive() } == "WATCHDOG=1")
        await group.triggerGracefulShutdown()
        try await running
        let messages = try await offThePool { () -> [String] in
            var messages: [String] = []
            while let message = receiver.receive(), !message.isEmpty {
                messages.append(message)
                if message.contains("STOPPING=1") { break }
            }
            return messages
        }
        #expect(messages.last == "STATUS=shutting down\nSTOPPING=1")
    }
}
