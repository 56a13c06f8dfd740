import Cryptography
public import Foundation
import Journal

/// One step of a request's evidence file, as stored and exported.
public struct EvidenceStep: Sendable, Hashable, Codable {
    /// The request.
    public let requestID: UUID
    /// Its place in the request's file, from 1 without gaps.
    public let position: Int
    /// When it happened, in microseconds since the Unix epoch.
    public let occurredAt: Int64
    /// Who did it (the operator's identity, or `osmose-dsard`).
    public let actor: String
    /// What was done (`opened`, `identity-checked`, `pack-released`…).
    public let kind: String
    /// What the step records: codes, dates, digests; never patient data in clear.
    public let details: [String: String]
    /// The canonical JSON the hash covers (the fields above); empty once the request
    /// was disposed of at the end of its retention term (``isErased``).
    public let body: String
    /// The previous step's hash (the chain's seed for the first).
    public let previousHash: [UInt8]
    /// SHA-256 of the previous hash and the body's UTF-8 bytes.
    public let hash: [UInt8]
    /// The `request_id` of the journal event that records the step (its reason carries the hash).
    public let journalRequestID: String

    /// Whether its body was erased when the request was disposed of: its hash and
    /// links stay, its content is gone.
    public var isErased: Bool { body.isEmpty }

    /// A step as stored (``EvidenceChain/step(after:requestID:occurredAt:actor:kind:details:journalRequestID:)`` builds new ones).
    public init(
        requestID: UUID, position: Int, occurredAt: Int64, actor: String, kind: String, details: [String: String], body: String, previousHash: [UInt8],
        hash: [UInt8], journalRequestID: String
    ) {
        self.requestID = requestID
        self.position = position
        self.occurredAt = occurredAt
        self.actor = actor
        self.kind = kind
        self.details = details
        self.body = body
        self.previousHash = previousHash
        self.hash = hash
        self.journalRequestID = journalRequestID
    }
}

/// The hash chain of a request's evidence file: each step commits to the one
/// before it, the first to the request's id, so that a step removed, inserted,
/// reordered or altered breaks every hash after it.
public enum EvidenceChain {
    /// The first step's previous hash: SHA-256 of `osmose/dsar/evidence/v1` and the request id.
    public static func seed(for requestID: UUID) -> [UInt8] {
        SHA256.hash(Array("osmose/dsar/evidence/v1\n\(requestID.uuidString.lowercased())".utf8))
    }

    /// The canonical JSON of a step: keys sorted, no spaces, the time in RFC 3339 with microseconds.
    public static func body(requestID: UUID, position: Int, occurredAt: Int64, actor: String, kind: String, details: [String: String]) throws -> String {
        struct Body: Encodable {
            let request: String
            let position: Int
            let occurredAt: String
            let actor: String
            let kind: String
            let details: [String: String]
            enum CodingKeys: String, CodingKey {
                case request, position, actor, kind, details
                case occurredAt = "occurred_at"
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = Body(
            request: requestID.uuidString.lowercased(), position: position, occurredAt: JournalEntry.rfc3339(microseconds: occurredAt), actor: actor,
            kind: kind, details: details)
        return String(decoding: try encoder.encode(body), as: UTF8.self)
    }

    /// SHA-256 of `previous` and `body`.
    public static func hash(previous: [UInt8], body: String) -> [UInt8] {
        SHA256.hash(previous + Array(body.utf8))
    }

    /// Builds the step that follows `last` (or the first one).
    public static func step(
        after last: EvidenceStep?, requestID: UUID, occurredAt: Int64, actor: String, kind: String, details: [String: String], journalRequestID: String
    ) throws -> EvidenceStep {
        let position = (last?.position ?? 0) + 1
        let previous = last?.hash ?? seed(for: requestID)
        let body = try body(requestID: requestID, position: position, occurredAt: occurredAt, actor: actor, kind: kind, details: details)
        return EvidenceStep(
            requestID: requestID, position: position, occurredAt: occurredAt, actor: actor, kind: kind, details: details, body: body,
            previousHash: previous, hash: hash(previous: previous, body: body), journalRequestID: journalRequestID)
    }

    /// What is wrong with a request's stored steps, in order: empty when the file is whole.
    /// An erased step (a disposed request's) is checked for its place and link only.
    public static func problems(in steps: [EvidenceStep], requestID: UUID) -> [String] {
        var problems: [String] = []
        var previous = seed(for: requestID)
        for (index, step) in steps.enumerated() {
            let label = "step \(step.position)"
            if step.position != index + 1 { problems.append("\(label): expected position \(index + 1) (a step is missing or out of order)") }
            if step.previousHash != previous { problems.append("\(label): does not follow the step before it") }
            // A disposed request's steps keep their hashes and links, not their bodies.
            if step.isErased {
                previous = step.hash
                continue
            }
            if hash(previous: step.previousHash, body: step.body) != step.hash { problems.append("\(label): its hash does not match its content") }
            let expected = try? body(
                requestID: requestID, position: step.position, occurredAt: step.occurredAt, actor: step.actor, kind: step.kind, details: step.details)
            if expected != step.body { problems.append("\(label): its stored columns differ from its hashed content") }
            previous = step.hash
        }
        return problems
    }

    /// The reason the journal event of `step` records: its kind and hash.
    public static func journalReason(_ step: EvidenceStep) -> String {
        "dsar.\(step.kind) sha256:\(hex(step.hash))"
    }
}

/// Lowercase hexadecimal.
func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return String(decoding: text, as: UTF8.self)
}

/// `sha256:` and the lowercase hex of the SHA-256 of `bytes`: how digests appear in steps and packs.
func digest(_ bytes: [UInt8]) -> String { "sha256:" + hex(SHA256.hash(bytes)) }

/// ``digest(_:)`` of a text's UTF-8 bytes.
func digest(_ text: String) -> String { digest(Array(text.utf8)) }
