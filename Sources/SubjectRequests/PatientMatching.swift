import CareRecords
import Foundation
import Store

/// Finds the patient a request is about, through the care records' blind-index
/// search (the table is never decrypted to search it), and tells a patient whom
/// retention has pseudonymised.
enum PatientMatching {
    /// The one patient `subject` names.
    /// - Throws: ``SubjectRequestError`` `.unknownPatient` when none matches,
    ///   `.ambiguousPatient` when several do and `chosen` is not one of them,
    ///   `.patientPseudonymised`, `.invalidArgument` for a malformed identity.
    static func match(_ subject: SubjectIdentification, chosen: UUID?, store: CareStore, on connection: isolated Connection) throws -> UUID {
        let candidates: [UUID]
        do {
            switch subject {
            case .patientName(let last, let first, let birth):
                candidates = try store.searchPatients(lastName: last, firstName: first, birthDate: birth, ins: nil, on: connection).map(\.id)
            case .patientINS(let ins):
                candidates = try store.searchPatients(lastName: nil, firstName: nil, birthDate: nil, ins: ins, on: connection).map(\.id)
            case .patientID(let id):
                guard try state(of: id, on: connection) != nil else {
                    throw SubjectRequestError(.unknownPatient, "no patient has the id \(id.uuidString.lowercased())")
                }
                candidates = [id]
            case .staff:
                throw SubjectRequestError(.invalidArgument, "a staff account is not a patient")
            }
        } catch let error as CareError {
            throw SubjectRequestError(.invalidArgument, "the patient's identity is malformed: \(error.message)")
        }
        guard !candidates.isEmpty else {
            throw SubjectRequestError(
                .unknownPatient,
                "no patient matches this identity (last name, first name and birth date together, or the INS): check the spelling against the identity documents")
        }
        let patient: UUID
        if let chosen {
            guard candidates.contains(chosen) else {
                throw SubjectRequestError(.invalidArgument, "the patient chosen is not one of the \(candidates.count) that match this identity")
            }
            patient = chosen
        } else {
            guard candidates.count == 1 else {
                throw SubjectRequestError(
                    .ambiguousPatient,
                    "\(candidates.count) patients match this identity: search by INS, or choose one with --patient-id among \(candidates.map { $0.uuidString.lowercased() }.joined(separator: ", "))")
            }
            patient = candidates[0]
        }
        try requireIdentifiable(patient, on: connection)
        return patient
    }

    /// What pseudonymisation leaves on a patient (issue 16, retention): its
    /// blind-index tokens removed, so that it can no longer be found by identity.
    /// The one place this is decided; nil when there is no such patient.
    static func state(of patient: UUID, on connection: isolated Connection) throws -> PatientState? {
        guard let row = try connection.query("SELECT search_name IS NULL AS pseudonymised FROM care.patients WHERE id = $1", [patient]).singleRow() else {
            return nil
        }
        return try row.bool("pseudonymised") ? .pseudonymised : .identifiable
    }

    /// Refuses a patient that retention pseudonymised, or that does not exist.
    static func requireIdentifiable(_ patient: UUID, on connection: isolated Connection) throws {
        switch try state(of: patient, on: connection) {
        case nil: throw SubjectRequestError(.unknownPatient, "no patient has the id \(patient.uuidString.lowercased())")
        case .pseudonymised?:
            throw SubjectRequestError(
                .patientPseudonymised,
                "this patient's record was pseudonymised by retention after its legal term (CSP R1112-7): it no longer identifies anyone, so no data is held about the requester as such; answer that no data is held (outcome no-data)")
        case .identifiable?: return
        }
    }

    /// When the most recent information about `patient` was written: the latest
    /// version of the patient, of their episodes and of their transmissions.
    static func latestInformation(of patient: UUID, on connection: isolated Connection) throws -> Date {
        let row = try connection.query(
            """
            SELECT greatest(
                (SELECT updated_at FROM care.patients WHERE id = $1),
                (SELECT max(v.changed_at) FROM care.record_versions v
                 WHERE (v.record_type = 'patient' AND v.record_id = $1)
                    OR (v.record_type = 'episode' AND v.record_id IN (SELECT id FROM care.episodes WHERE patient_id = $1))
                    OR (v.record_type = 'transmission' AND v.record_id IN (
                        SELECT t.id FROM care.transmissions t JOIN care.episodes e ON e.id = t.episode_id WHERE e.patient_id = $1)))
            ) AS latest
            """, [patient]
        ).rows[0]
        guard let latest = try row.optionalDate("latest") else { throw SubjectRequestError(.unknownPatient, "no patient has the id \(patient)") }
        return latest
    }

    /// Whether a patient can still be identified.
    enum PatientState {
        case identifiable, pseudonymised
    }
}
