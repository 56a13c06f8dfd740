import Foundation
import Journal
import Keyring
import Logging
import ServiceLifecycle
import Store
import SubjectRequests

/// Works the queue of packs and evidence files (`dsar.jobs`): woken by NOTIFY (and
/// every few seconds), it takes the oldest job, runs it with the master key, and
/// stores its summary and sealed output. A job that fails records why; the worker
/// goes on. A lost connection is reopened.
struct PackJobWorker: Service {
    let connectionString: String
    let ring: DataKeyRing
    let settings: PackSettings
    let scratch: String
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully {
            do {
                try await Connection.withConnection(connectionString, applicationName: "osmose-dsard-jobs", logger: logger) { connection in
                    try await connection.listen(PackJobs.channel)
                    while !Task.isShuttingDownGracefully {
                        while !Task.isShuttingDownGracefully, try await workOne(on: connection) {}
                        _ = try await connection.waitForNotifications(timeout: .seconds(1))
                    }
                }
            } catch {
                logger.error("the pack queue's connection failed; reconnecting in 5 s", metadata: ["osmose.error": "\(error)"])
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(5)) }
            }
        }
    }

    /// Runs the oldest queued job; false when there was none.
    func workOne(on connection: Connection) async throws -> Bool {
        guard let job = try await connection.transaction({ connection in try PackJobs.claim(on: connection) }) else { return false }
        logger.info("job started", metadata: ["osmose.dsar.job": "\(job.id)", "osmose.dsar.request": "\(job.operation.number)"])
        let outcome: Result<PackOperationResult, any Error>
        do {
            outcome = .success(
                try await PackOperations.perform(
                    job.operation, actor: .operator(job.requestedBy, role: .dpo), ring: ring, settings: settings, scratch: scratch, on: connection))
        } catch {
            logger.warning("job failed", metadata: ["osmose.dsar.job": "\(job.id)", "osmose.error": "\(error)"])
            outcome = .failure(error)
        }
        try await connection.transaction { connection in try PackJobs.finish(job.id, with: outcome, on: connection) }
        return true
    }
}
