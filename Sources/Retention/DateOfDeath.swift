public import CareRecords
public import Foundation
public import Journal
public import Keyring
public import Store

/// The DPO's recording of a patient's date of death (an input of the R1112-7
/// clock), through osmosectl: the care record's new version names the operator,
/// and the access journal records it. A manager records it through the care service.
public enum DateOfDeath {
    /// Records, changes or clears (nil) the date of death of `patient`, in the caller's transaction.
    /// - Throws: ``CareRecords/CareError`` for an unknown patient, a malformed or
    ///   impossible date, or a pseudonymised record.
    public static func record(
        patient: UUID, date: String?, ring: DataKeyRing, by actor: SystemActor, on connection: isolated Connection
    ) throws -> PatientView {
        let view = try CareStore(ring: ring).setDateOfDeath(patient, to: date, by: .operator(actor.name), on: connection)
        try connection.record(
            AccessEvent.system(
                by: actor, action: .update, objectType: "patient", objectID: patient.uuidString.lowercased(), patientID: patient,
                reason: date == nil ? "date of death cleared" : "date of death recorded"))
        return view
    }
}
