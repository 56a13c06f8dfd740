public import CareRecords
import Foundation
public import Store

/// Restriction of processing (GDPR art. 18) set and lifted for a request: a flag on
/// the patient that osmose-care enforces (hidden from lists and searches, opened
/// only on a ground of art. 18(2), never exported). Setting and lifting are steps
/// of the evidence file and journal events.
public struct Restrictions: Sendable {
    let register: RequestRegister

    /// Restrictions set by `register`'s actor.
    public init(register: RequestRegister) { self.register = register }

    /// Restricts the processing of request `number`'s patient (a restriction request,
    /// or an erasure refused with restriction offered and accepted).
    /// - Throws: ``SubjectRequestError`` `.wrongKind`, `.identityNotChecked`, `.notReady` when already restricted.
    public func restrict(number: Int64, on connection: isolated Connection) throws -> PatientRestriction {
        let record = try register.openRequest(number: number, on: connection)
        guard record.kind == .restriction || record.kind == .erasure || record.kind == .objection else {
            throw SubjectRequestError(.wrongKind, "a \(record.kind.rawValue) request does not restrict processing")
        }
        guard let patient = record.patientID else { throw SubjectRequestError(.wrongKind, "request \(number) is not about a patient") }
        guard record.identityCheck != nil else {
            throw SubjectRequestError(.identityNotChecked, "request \(number): check the requester's identity before restricting the record")
        }
        try PatientMatching.requireIdentifiable(patient, on: connection)
        let restriction: PatientRestriction
        do {
            restriction = try PatientRestrictions.restrict(patient, request: record.id, by: register.actor.name, on: connection)
        } catch let error as CareError {
            throw SubjectRequestError(.notReady, error.message)
        }
        try EvidenceLog.append(
            record, kind: "restricted", details: ["restriction": restriction.id.uuidString.lowercased(), "basis": "RGPD art. 18(1)"], actor: register.actor,
            on: connection)
        return restriction
    }

    /// Lifts the restriction on request `number`'s patient (the requester is told
    /// beforehand, art. 18(3)).
    public func lift(number: Int64, reason: RestrictionLiftReason, on connection: isolated Connection) throws -> PatientRestriction {
        let record = try register.request(number: number, on: connection)
        guard let patient = record.patientID else { throw SubjectRequestError(.wrongKind, "request \(number) is not about a patient") }
        let restriction: PatientRestriction
        do {
            restriction = try PatientRestrictions.lift(on: patient, reason: reason, by: register.actor.name, on: connection)
        } catch let error as CareError {
            throw SubjectRequestError(.notReady, error.message)
        }
        try EvidenceLog.append(
            record, kind: "restriction-lifted",
            details: [
                "restriction": restriction.id.uuidString.lowercased(), "reason": reason.rawValue, "set_by_request": restriction.subjectRequestID.uuidString.lowercased(),
            ], actor: register.actor, on: connection)
        return restriction
    }
}
