import Glibc
public import Foundation
public import Journal
public import Keyring
public import Store

/// Work on a request's pack or evidence file that needs the master key, the same
/// whether `osmosectl dsar` runs it (with the key) or osmose-dsard runs it from its
/// queue (holding the key as a credential). Its inputs are never personal data (a
/// queued job is stored in the database), and its outputs are sealed files.
public enum PackOperation: Sendable, Hashable, Codable {
    /// The draft, sealed for the DPO's own age key (to read and choose redactions).
    case review(number: Int64, staffNames: Bool, recipient: String)
    /// Approval of the pack as it stands.
    case approve(number: Int64, staffNames: Bool)
    /// Release of the approved pack, sealed for the requester's age key.
    case release(number: Int64, recipient: String)
    /// The evidence file, sealed for an age key (the DPO's, or the CNIL's).
    case evidence(number: Int64, recipient: String)

    /// The request it concerns.
    public var number: Int64 {
        switch self {
        case .review(let number, _, _), .approve(let number, _), .release(let number, _), .evidence(let number, _): number
        }
    }
}

/// What an operation did: a summary (digests, counts) and, for those that write
/// one, the sealed file's bytes (age ciphertext).
public struct PackOperationResult: Sendable, Hashable, Codable {
    /// Digests, counts, and where things stand.
    public var summary: [String: String]
    /// The sealed file, when the operation writes one.
    public var sealed: [UInt8]?
}

/// The settings an operation needs beside the keys.
public struct PackSettings: Sendable, Hashable {
    /// The controller's time zone.
    public var timeZone: TimeZone
    /// The controller's name, at the head of packs.
    public var establishment: String

    /// Settings.
    public init(timeZone: TimeZone, establishment: String) {
        self.timeZone = timeZone
        self.establishment = establishment
    }
}

/// Runs ``PackOperation``s.
public enum PackOperations {
    /// Runs `operation` as `actor` and returns its summary and sealed output. The
    /// sealed file is written under `scratch` (a private directory), read back and removed.
    public static func perform(
        _ operation: PackOperation, actor: SystemActor, ring: DataKeyRing, settings: PackSettings, scratch: String, on connection: Connection
    ) async throws -> PackOperationResult {
        let register = RequestRegister(actor: actor, timeZone: settings.timeZone, ring: ring)
        let workflow = AccessPackWorkflow(register: register, ring: ring)
        let path = "\(scratch)/\(UUID().uuidString.lowercased()).age"
        defer { unlink(path) }
        switch operation {
        case .review(let number, let staffNames, let recipient):
            _ = try SealTarget.recipient(recipient).wrapper()
            let pack = try await connection.transaction(isolation: .repeatableRead) { connection in
                try workflow.review(number: number, staffNames: staffNames, on: connection)
            }
            let file = try SealedArchive.write(
                try AccessPackFiles.members(of: pack, json: try pack.canonicalJSON(), establishment: settings.establishment), to: path, for: .recipient(recipient))
            return PackOperationResult(
                summary: ["draft": file.sha256, "consultations": String(pack.consultations.count), "checkpoint": String(pack.journal.checkpointID)],
                sealed: try read(path))
        case .approve(let number, let staffNames):
            let approved = try await connection.transaction(isolation: .repeatableRead) { connection in
                try workflow.approve(number: number, staffNames: staffNames, on: connection)
            }
            return PackOperationResult(
                summary: [
                    "content": approved.contentSHA256, "consultations": String(approved.consultations), "checkpoint": String(approved.checkpointID),
                    "redactions": String(approved.redactions), "staff_names": String(approved.staffNames),
                ], sealed: nil)
        case .release(let number, let recipient):
            let released = try await connection.transaction { connection in
                try workflow.release(number: number, to: .recipient(recipient), path: path, establishment: settings.establishment, on: connection)
            }
            return PackOperationResult(
                summary: ["content": released.contentSHA256, "sealed_file": released.file.sha256, "sealed_to": released.sealedTo], sealed: try read(path))
        case .evidence(let number, let recipient):
            _ = try SealTarget.recipient(recipient).wrapper()
            let document = try await connection.transaction(isolation: .repeatableRead) { connection in
                try EvidenceFiles(register: register).document(number: number, on: connection)
            }
            let file = try SealedArchive.write([("evidence.json", try EvidenceFiles.json(document))], to: path, for: .recipient(recipient))
            return PackOperationResult(
                summary: ["evidence": file.sha256, "steps": String(document.steps.count), "problems": String(document.problems.count)], sealed: try read(path))
        }
    }

    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw SubjectRequestError(.internalError, "the sealed file \(path) cannot be read back") }
        return Array(data)
    }
}

/// The queue of ``PackOperation``s for osmose-dsard (`dsar.jobs`).
public enum PackJobs {
    /// The NOTIFY channel a new job signals.
    public static let channel = "osmose_dsar_jobs"

    /// Where a job stands.
    public struct Status: Sendable, Hashable {
        public let state: String
        public let result: PackOperationResult?
        public let error: String?
    }

    /// Queues `operation` for osmose-dsard, asked by `requestedBy`.
    public static func enqueue(_ operation: PackOperation, requestedBy: String, on connection: isolated Connection) throws -> UUID {
        let id = UUID()
        let json = String(decoding: try JSONEncoder().encode(operation), as: UTF8.self)
        try connection.query(
            "INSERT INTO dsar.jobs (id, operation, requested_by, state) VALUES ($1, $2::jsonb, $3, 'queued')", [id, json, requestedBy])
        return id
    }

    /// Takes the oldest queued job, if any (several daemons never take the same one).
    public static func claim(on connection: isolated Connection) throws -> (id: UUID, operation: PackOperation, requestedBy: String)? {
        guard let row = try connection.query(
            """
            UPDATE dsar.jobs SET state = 'running', started_at = clock_timestamp()
            WHERE id = (SELECT id FROM dsar.jobs WHERE state = 'queued' ORDER BY requested_at, id FOR UPDATE SKIP LOCKED LIMIT 1)
            RETURNING id, operation::text AS operation, requested_by
            """
        ).singleRow() else { return nil }
        let operation = try JSONDecoder().decode(PackOperation.self, from: Data(try row.string("operation").utf8))
        return (try row.uuid("id"), operation, try row.string("requested_by"))
    }

    /// Records a job's outcome.
    public static func finish(_ id: UUID, with outcome: Result<PackOperationResult, any Error>, on connection: isolated Connection) throws {
        switch outcome {
        case .success(let result):
            let summary = String(decoding: try JSONEncoder().encode(result.summary), as: UTF8.self)
            try connection.query(
                "UPDATE dsar.jobs SET state = 'done', finished_at = clock_timestamp(), result = $2::jsonb, output = $3 WHERE id = $1",
                [id, summary, result.sealed])
        case .failure(let error):
            try connection.query(
                "UPDATE dsar.jobs SET state = 'failed', finished_at = clock_timestamp(), error = $2 WHERE id = $1", [id, String(describing: error)])
        }
    }

    /// Where job `id` stands.
    public static func status(_ id: UUID, on connection: isolated Connection) throws -> Status {
        guard let row = try connection.query("SELECT state, result::text AS result, output, error FROM dsar.jobs WHERE id = $1", [id]).singleRow() else {
            throw SubjectRequestError(.jobFailed, "no queued job \(id.uuidString.lowercased())")
        }
        var result: PackOperationResult?
        if let summary = try row.optionalString("result") {
            result = PackOperationResult(
                summary: try JSONDecoder().decode([String: String].self, from: Data(summary.utf8)), sealed: try row.optionalBytes("output"))
        }
        return Status(state: try row.string("state"), result: result, error: try row.optionalString("error"))
    }

    /// Drops the sealed output of a job once handed to the DPO.
    public static func collected(_ id: UUID, on connection: isolated Connection) throws {
        try connection.query("UPDATE dsar.jobs SET output = NULL WHERE id = $1", [id])
    }
}
