import CareRecords
import Foundation
import HTTPTypes
import Store

/// Restriction of processing (GDPR art. 18) on the care request path: a
/// restricted patient is hidden from lists and searches, their record opens only
/// when the request names a ground of art. 18(2) in `Osmose-Restriction-Override`
/// (the opening is recorded for the DPO and the event's reason names the ground),
/// and exports are refused whatever the ground. Every endpoint passes through
/// ``enforce(_:_:on:)`` once its handler has named the patient it touched.
enum RestrictionGate {
    /// The ground named in the request, if any.
    /// - Throws: ``CareRecords/CareError`` `.invalidField` for a value that is not a ground.
    static func ground(_ header: String?) throws -> RestrictionGround? {
        guard let header else { return nil }
        guard let ground = RestrictionGround(rawValue: header) else {
            throw CareError(
                .invalidField,
                "Osmose-Restriction-Override must be one of \(RestrictionGround.allCases.map(\.rawValue).joined(separator: ", ")) (GDPR art. 18(2))")
        }
        return ground
    }

    /// The event's reason when a restricted record is opened on `ground`.
    static func reason(_ ground: RestrictionGround) -> String { "restriction-override:\(ground.rawValue)" }

    /// Refuses the request when the patient it touched is restricted and no ground
    /// was named, or when it exports; otherwise records the opening.
    static func enforce(_ call: CareAPI.Call, _ endpoint: CareAPI.Endpoint, on connection: isolated Connection) throws {
        guard let patient = call.audit.patientID, let restriction = try PatientRestrictions.inForce(on: patient, on: connection) else { return }
        guard endpoint.journalAction != .export else {
            throw CareError(.restricted, "this patient's processing is restricted (GDPR art. 18): their record is not exported")
        }
        guard let ground = call.restrictionOverride else {
            throw CareError(
                .restricted,
                "this patient's processing is restricted (GDPR art. 18): name a ground of art. 18(2) in Osmose-Restriction-Override to open the record; the DPO is told")
        }
        try PatientRestrictions.recordOverride(
            restriction, by: call.principal, ground: ground, careRequestID: call.audit.requestID,
            endpoint: "\(endpoint.resource.rawValue) \(endpoint.policyAction)", on: connection)
        call.audit.note(reason(ground))
    }

    /// `items` without those of restricted patients, unless a ground was named (then
    /// each restricted patient shown is an opening recorded for the DPO).
    static func visible<Item>(
        _ items: [Item], patient: (Item) -> UUID, _ call: CareAPI.Call, _ endpoint: String,
        on connection: isolated Connection
    ) throws -> [Item] {
        let restricted = try PatientRestrictions.restricted(among: items.map(patient), on: connection)
        guard !restricted.isEmpty else { return items }
        guard let ground = call.restrictionOverride else { return items.filter { !restricted.contains(patient($0)) } }
        for id in restricted.sorted(by: { $0.uuidString < $1.uuidString }) {
            if let restriction = try PatientRestrictions.inForce(on: id, on: connection) {
                try PatientRestrictions.recordOverride(restriction, by: call.principal, ground: ground, careRequestID: call.audit.requestID, endpoint: endpoint, on: connection)
            }
        }
        call.audit.note(reason(ground))
        return items
    }
}

extension HTTPField.Name {
    /// The ground of GDPR art. 18(2) on which a restricted record is opened.
    static let osmoseRestrictionOverride = HTTPField.Name("Osmose-Restriction-Override")!
}
