import DaemonRuntime
import Foundation
import Store
import Glibc
import Journal
import Logging
import ServiceLifecycle
import Settings
import Testing
import TestSupport

/// Holds what a service produced, for the test to read after the group ended.
final class Produced: Sendable {
    private let value = Locked<Int?>(nil)
    func set(_ produced: Int) { value.withLock { $0 = produced } }
    var current: Int? { value.withLock { $0 } }
}

@Suite("The shared start-up: configuration, logging, sd_notify, one service group", .serialized)
struct DaemonContextTests {
    func context(_ text: String, notifySocket: String? = nil) throws -> DaemonContext {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-context-\(UUID().uuidString.prefix(8)).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        var environment = ["OSMOSE_CONFIG": path]
        if let notifySocket { environment["NOTIFY_SOCKET"] = notifySocket }
        return try DaemonContext(.keyd, logLabel: "osmose.test", options: DaemonOptions.parse([]), environment: environment)
    }

    /// The group traps SIGTERM and SIGINT by ignoring them; give this test process its defaults back.
    func restoreSignals() {
        signal(SIGTERM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
    }

    @Test("The configuration named by $OSMOSE_CONFIG is read and the logger takes its level")
    func configurationAndLogging() throws {
        let context = try context("logging:\n  level: warning\n")
        #expect(context.configuration.logging.level == "warning")
        #expect(context.logger.logLevel == .warning)
        #expect(context.logger.label == "osmose.test")
        #expect(context.program == .keyd)
        let invalid = #expect(throws: ConfigurationError.self) { try self.context("logging:\n  levle: warning\n") }
        #expect(invalid?.code == .unknownSetting)
        #expect(invalid.map { ExitStatus(for: $0).code } == 3)
    }

    @Test("The shutdown deadline stays below every unit's TimeoutStopSec (systemd's default 90 s where none is set)")
    func deadlineBelowUnitTimeouts() throws {
        let directory = repositoryRoot.appendingPathComponent("systemd").path
        let units = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".service") }
        #expect(!units.isEmpty)
        for unit in units {
            let text = try String(contentsOfFile: "\(directory)/\(unit)", encoding: .utf8)
            let setting = text.split(separator: "\n").first { $0.hasPrefix("TimeoutStopSec=") }
            let seconds = try setting.map { line -> Int in
                let value = line.dropFirst("TimeoutStopSec=".count)
                return try #require(Int(value.hasSuffix("s") ? value.dropLast() : value), "\(unit): \(line)")
            } ?? 90
            #expect(ShutdownDeadline.total < .seconds(seconds), "\(unit)")
        }
        #expect(ShutdownDeadline.total == .seconds(25))
    }

    @Test("A run-to-completion daemon says READY, stops its work at the next safe point on graceful shutdown, says STOPPING, and returns what the work returned")
    func runToCompletionStopsGracefully() async throws {
        defer { restoreSignals() }
        let receiver = try DatagramSocket()
        let context = try context("", notifySocket: receiver.address)
        let progress = Produced()
        let returned = Produced()
        let parent = ServiceGroup(
            services: [
                ClosureService {
                    let batches = try await context.runToCompletion(readyStatus: "working") { () -> Int in
                        var batches = 0
                        while !Task.isShuttingDownGracefully {
                            batches += 1
                            progress.set(batches)
                            try await Task.sleep(for: .milliseconds(5))
                        }
                        return batches
                    }
                    returned.set(batches)
                }
            ], logger: context.logger)
        async let running: Void = parent.run()
        let ready = try #require(try await offThePool { receiver.receive() })
        #expect(ready.contains("READY=1") && ready.contains("STATUS=working"), "\(ready)")
        try await waitUntil("three batches") { (progress.current ?? 0) >= 3 }
        #expect(returned.current == nil, "the work runs until it is asked to stop")
        await parent.triggerGracefulShutdown()
        try await running
        let stopping = try #require(try await offThePool { receiver.receive() })
        #expect(stopping.contains("STOPPING=1"), "\(stopping)")
        let batches = try #require(returned.current, "the work returned after the graceful shutdown")
        #expect(batches >= 3 && batches == progress.current, "it stopped after the batch it was in")
    }

    @Test("A run-to-completion daemon whose work ends by itself returns its value; a service's error comes out of the group as it was thrown")
    func completionAndErrors() async throws {
        defer { restoreSignals() }
        let context = try context("")
        #expect(try await context.runToCompletion(readyStatus: "working") { 42 } == 42)
        let thrown = await #expect(throws: JournalError.self) {
            try await context.runServiceGroup([.init(service: ClosureService { throw JournalError(.witness, "rolled back") })])
        }
        #expect(thrown?.code == .witness)
        #expect(thrown.map { ExitStatus(for: $0).code } == 5)
    }
}
