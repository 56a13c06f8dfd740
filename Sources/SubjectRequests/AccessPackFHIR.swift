import Foundation

/// The access pack as a FHIR R4 Bundle (type `collection`): the Patient, an
/// Encounter per care episode, a Communication per transmission, a Provenance per
/// record version, an AuditEvent per access. Fields without a FHIR element travel
/// as extensions (`urn:osmose:fhir:…`), so that nothing held is lost.
public enum AccessPackFHIR {
    /// The bundle, as JSON.
    public static func bundle(_ pack: AccessPack) throws -> [UInt8] {
        var entries: [[String: Any]] = []
        let patientID = pack.patientID.uuidString.lowercased()
        func add(_ resource: [String: Any]) {
            entries.append(["fullUrl": "urn:uuid:\(resource["id"] as? String ?? UUID().uuidString.lowercased())", "resource": resource])
        }
        if let row = pack.table("care.patients")?.rows.first { add(patient(row, id: patientID)) }
        for row in pack.table("care.episodes")?.rows ?? [] { add(encounter(row, patient: patientID, pack: pack)) }
        for row in pack.table("care.transmissions")?.rows ?? [] { add(communication(row, patient: patientID, pack: pack)) }
        for row in pack.table("care.record_versions")?.rows ?? [] { add(provenance(row, pack: pack)) }
        for consultation in pack.consultations { add(auditEvent(consultation, patient: patientID, pack: pack)) }
        let bundle: [String: Any] = [
            "resourceType": "Bundle", "id": UUID().uuidString.lowercased(), "type": "collection", "timestamp": pack.builtAt, "total": entries.count,
            "meta": ["tag": [["system": "urn:osmose:access-pack", "code": "request-\(pack.request.number)"]]],
            "entry": entries,
        ]
        return Array(try JSONSerialization.data(withJSONObject: bundle, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]))
    }

    static func value(_ row: PackRow, _ column: String) -> String? { row.columns[column]?.value }

    static func extensions(_ row: PackRow, except used: Set<String>, pack: AccessPack) -> [[String: Any]] {
        row.columns.keys.sorted().filter { !used.contains($0) }.compactMap { column in
            guard let cell = row.columns[column], let text = cell.value else { return nil }
            return ["url": "urn:osmose:fhir:field:\(column)", "valueString": display(cell, pack: pack) ?? text]
        }
    }

    static func display(_ cell: PackCell, pack: AccessPack) -> String? {
        guard cell.source == .staff, let reference = cell.value, let member = pack.staff.first(where: { $0.reference == reference }) else { return cell.value }
        return member.name ?? ([member.role, member.team].compactMap { $0 }.joined(separator: ", ") + " [\(reference)]")
    }

    static func patient(_ row: PackRow, id: String) -> [String: Any] {
        var resource: [String: Any] = ["resourceType": "Patient", "id": id]
        var name: [String: Any] = ["use": "official"]
        if let family = value(row, "last_name") { name["family"] = family }
        if let given = value(row, "first_name") { name["given"] = [given] }
        resource["name"] = [name]
        if let birth = value(row, "birth_date") { resource["birthDate"] = birth }
        if let sex = value(row, "sex") { resource["gender"] = ["female": "female", "male": "male", "other": "other"][sex] ?? "unknown" }
        if let ins = value(row, "ins") {
            resource["identifier"] = [["system": "urn:oid:1.2.250.1.213.1.4.8", "value": ins, "type": ["text": "INS-NIR"]]]
        }
        return resource
    }

    static func encounter(_ row: PackRow, patient: String, pack: AccessPack) -> [String: Any] {
        var resource: [String: Any] = [
            "resourceType": "Encounter", "id": row.key, "status": value(row, "status") == "closed" ? "finished" : "in-progress",
            "class": ["system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER", "display": "emergency"],
            "subject": ["reference": "Patient/\(patient)"],
        ]
        var period: [String: Any] = [:]
        if let start = value(row, "arrival_at") { period["start"] = start }
        if let end = value(row, "closed_at") { period["end"] = end }
        resource["period"] = period
        if let reason = value(row, "reason") { resource["reasonCode"] = [["text": reason]] }
        if let team = value(row, "team_id") { resource["serviceProvider"] = ["display": "équipe \(team)"] }
        resource["extension"] = extensions(row, except: ["id", "status", "patient_id", "arrival_at", "closed_at", "reason", "team_id"], pack: pack)
        return resource
    }

    static func communication(_ row: PackRow, patient: String, pack: AccessPack) -> [String: Any] {
        var resource: [String: Any] = [
            "resourceType": "Communication", "id": row.key, "status": value(row, "retracted_at") == nil ? "completed" : "entered-in-error",
            "subject": ["reference": "Patient/\(patient)"],
        ]
        if let episode = value(row, "episode_id") { resource["encounter"] = ["reference": "Encounter/\(episode)"] }
        if let category = value(row, "category") { resource["category"] = [["text": category]] }
        if let sent = value(row, "written_at") { resource["sent"] = sent }
        if let author = row.columns["author_id"].flatMap({ display($0, pack: pack) }) { resource["sender"] = ["display": author] }
        var payload: [[String: Any]] = []
        if let body = value(row, "body") { payload.append(["contentString": body]) }
        if let checklist = value(row, "checklist") { payload.append(["contentString": checklist]) }
        resource["payload"] = payload
        resource["extension"] = extensions(row, except: ["id", "episode_id", "category", "written_at", "author_id", "body", "checklist"], pack: pack)
        return resource
    }

    static func provenance(_ row: PackRow, pack: AccessPack) -> [String: Any] {
        let kind = ["patient": "Patient", "episode": "Encounter", "transmission": "Communication"][value(row, "record_type") ?? ""] ?? "Basic"
        let who = row.columns["changed_by"].flatMap { $0.value == nil ? nil : display($0, pack: pack) }
            ?? "délégué à la protection des données (demande d'exercice de droits)"
        return [
            "resourceType": "Provenance", "id": row.key,
            "target": [["reference": "\(kind)/\(value(row, "record_id") ?? "")"]],
            "recorded": value(row, "changed_at") ?? pack.builtAt,
            "activity": [
                "coding": [
                    [
                        "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": value(row, "version") == "1" ? "CREATE" : "UPDATE",
                    ]
                ]
            ],
            "agent": [["who": ["display": who]]],
            "extension": [
                ["url": "urn:osmose:fhir:record-version", "valueString": value(row, "version") ?? ""],
                ["url": "urn:osmose:fhir:changed-fields", "valueString": value(row, "changed_fields") ?? ""],
                ["url": "urn:osmose:fhir:snapshot", "valueString": value(row, "snapshot") ?? ""],
            ],
        ]
    }

    static func auditEvent(_ consultation: PackConsultation, patient: String, pack: AccessPack) -> [String: Any] {
        var agent: [String: Any] = ["requestor": true]
        var roles: [[String: Any]] = []
        if let role = consultation.actorRole { roles.append(["coding": [["system": "urn:osmose:role", "code": role]], "text": role]) }
        if let team = consultation.actorTeam { roles.append(["coding": [["system": "urn:osmose:team", "code": team]], "text": "team \(team)"]) }
        if !roles.isEmpty { agent["role"] = roles }
        if let name = consultation.actorName { agent["name"] = name } else if let reference = consultation.staff { agent["who"] = ["display": reference] }
        var event: [String: Any] = [
            "resourceType": "AuditEvent", "id": "journal-\(consultation.sequence)",
            "type": ["system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"],
            "subtype": [["system": "urn:osmose:access-action", "code": consultation.action]],
            "action": ["create": "C", "read": "R", "export": "R", "update": "U", "delete": "D"][consultation.action] ?? "E",
            "period": ["start": consultation.occurredAt, "end": consultation.occurredAt], "recorded": consultation.occurredAt,
            "outcome": consultation.result == "success" ? "0" : consultation.result == "denied" ? "4" : "8",
            "agent": [agent],
            "source": ["site": pack.journal.origin, "observer": ["display": consultation.source]],
            "entity": [
                ["what": ["reference": "Patient/\(patient)"], "role": ["system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"]],
                [
                    "description": consultation.objectType,
                    "detail": [
                        ["type": "journal-sequence", "valueString": String(consultation.sequence)], ["type": "leaf-hash", "valueString": consultation.leafHash],
                    ],
                ],
            ],
        ]
        if let reason = consultation.reason { event["outcomeDesc"] = reason }
        if let purpose = consultation.purpose {
            let code = ["care": "TREAT", "coordination": "COC", "administration": "HOPERAT", "audit": "HSYSADMIN"][purpose] ?? "PATRQT"
            event["purposeOfEvent"] = [["coding": [["system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": code]], "text": purpose]]
        }
        return event
    }
}
