import Foundation
import KeyManagement
import Keyring
import Logging
import Settings
import Store
import Synchronization
import Systemd

/// `osmose-keyd`: started by its timer (or on demand), it starts the rotations
/// whose cryptoperiod has ended, re-encrypts in the background until every
/// running rotation is finished, then exits. SIGTERM stops it after the current
/// batch; the next start resumes from the last committed batch.
public enum KeyDaemon {
    /// Exit statuses: 0 done (or stopped), 1 unexpected, 3 configuration or policy
    /// invalid, 4 database unreachable, 6 master key missing or wrong.
    public static func main() async {
        let configPath = DaemonCommandLine.configurationPath(
            program: "osmose-keyd",
            summary: """
                Rotates data keys whose cryptoperiod (policies/keys.yaml) has ended, re-encrypts the values
                under older keys in rate-limited batches while the care service keeps serving, retires a key
                once a scan proves nothing uses it, and exits when no rotation is left.
                Master key: the master-key credential, else keys.master_key_file.
                Exit status: 0 done, 3 configuration or policy, 4 database, 6 master key.
                """)
        let notifier = SystemdNotifier()
        var logger = Logger(label: "osmose.keys") { JournaldLogHandler(label: $0, format: JournaldLogHandler.Format.detect()) }
        let stop = StopRequest()
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let sources = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { stop.request() }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }
        do {
            let configuration = try SuiteConfiguration.load(path: configPath)
            logger.logLevel = Logger.Level(rawValue: configuration.logging.level) ?? .info
            let policy = try KeyPolicy.load(path: configuration.keyPolicyPath)
            let master = try MasterKey.load(
                credential: Credentials().path(of: MasterKey.credentialName), orFile: configuration.keys.masterKeyFile, setting: "keys.master_key_file")
            let connection = try await Connection.connect(configuration.keysConnection, applicationName: "osmose-keyd", logger: logger)
            let ring = try await DataKeyRing.load(on: connection, master: master)
            try? notifier.ready(status: "checking key schedules")
            let worker = RotationWorker(policy: policy, master: master, ring: ring, logger: logger) { status in try? notifier.send(["STATUS": status]) }
            let summary = try await worker.run(on: connection, until: { stop.isRequested })
            await connection.close()
            logger.info("done", metadata: ["osmose.keys.rewritten": "\(summary.rewritten)", "osmose.keys.finished": "\(summary.finished)"])
            try? notifier.stopping(status: stop.isRequested ? "stopped; the next start resumes" : "no rotation left")
            exit(0)
        } catch {
            let status: Int32
            switch error {
            case is ConfigurationError: status = 3
            case is StoreError: status = 4
            case is KeyringError: status = 6
            default: status = 1
            }
            notifier.exitFailing("osmose-keyd", error, status: status)
        }
    }
}

/// Set by SIGTERM; read between batches.
final class StopRequest: Sendable {
    private let flag = Mutex(false)
    var isRequested: Bool { flag.withLock { $0 } }
    func request() { flag.withLock { $0 = true } }
}
