public import Foundation

/// The text and file formats the journal publishes, each a C2SP or FHIR format so
/// that a third party verifies or reads them with standard tools.
public enum JournalFormats {
    /// A `c2sp.org/tlog-proof@v1` proof: the entry's index, its RFC 9162 inclusion
    /// proof, an empty line, and the signed checkpoint it is proven against.
    public static func tlogProof(index: UInt64, proof: [[UInt8]], checkpointNote: String) -> String {
        var text = "c2sp.org/tlog-proof@v1\nindex \(index)\n"
        for hash in proof { text += Data(hash).base64EncodedString() + "\n" }
        return text + "\n" + checkpointNote
    }

    /// Appends the `c2sp.org/tlog-proof@v1` text of `proof` against the checkpoint
    /// whose note is `checkpointNote` (its UTF-8 bytes) to `output`: the same text as
    /// ``tlogProof(index:proof:checkpointNote:)``, written without intermediate strings
    /// for exports of millions of proofs.
    public static func appendTlogProof(_ proof: InclusionProof, checkpointNote: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: tlogProofHeader)
        appendDecimal(proof.index, to: &output)
        output.append(0x0A)
        var offset = 0
        while offset < proof.lower.count {
            Base64.appendLine(proof.lower[offset..<offset + 32], to: &output)
            offset += 32
        }
        output.append(contentsOf: proof.upper.lines)
        output.append(0x0A)
        output.append(contentsOf: checkpointNote)
    }

    private static let tlogProofHeader = Array("c2sp.org/tlog-proof@v1\nindex ".utf8)

    /// The tlog-proof of `proof` against the checkpoint whose note is `checkpointNote`.
    public static func tlogProof(_ proof: InclusionProof, checkpointNote: String) -> String {
        var bytes: [UInt8] = []
        appendTlogProof(proof, checkpointNote: Array(checkpointNote.utf8), to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `value` in decimal ASCII.
    static func appendDecimal(_ value: UInt64, to output: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        withUnsafeMutableBytes(of: &digits) { digits in
            repeat {
                digits[19 - count] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                count += 1
            } while rest > 0
            output.append(contentsOf: digits[(20 - count)...])
        }
    }

    /// The body of a C2SP tlog-witness `add-checkpoint` request: `old <size>`, the
    /// consistency proof (one base64 hash per line), an empty line, the new checkpoint.
    public static func addCheckpointBody(oldSize: UInt64, proof: [[UInt8]], checkpointNote: String) -> String {
        var text = "old \(oldSize)\n"
        for hash in proof { text += Data(hash).base64EncodedString() + "\n" }
        return text + "\n" + checkpointNote
    }

    /// Entries as a C2SP tlog-tiles entry bundle: each entry's bytes behind a uint16 big-endian length.
    public static func entryBundle(_ entries: [[UInt8]]) -> [UInt8] {
        var bundle: [UInt8] = []
        for entry in entries {
            bundle.append(UInt8(entry.count >> 8))
            bundle.append(UInt8(entry.count & 0xFF))
            bundle.append(contentsOf: entry)
        }
        return bundle
    }

    /// Splits an entry bundle back into entries.
    /// - Throws: ``EntryFormatError`` when a length runs past the end.
    public static func entries(inBundle bundle: [UInt8]) throws -> [[UInt8]] {
        var entries: [[UInt8]] = []
        var offset = 0
        while offset < bundle.count {
            guard offset + 2 <= bundle.count else { throw EntryFormatError("entry bundle truncated in a length") }
            let length = Int(bundle[offset]) << 8 | Int(bundle[offset + 1])
            guard offset + 2 + length <= bundle.count else { throw EntryFormatError("entry bundle truncated in an entry") }
            entries.append(Array(bundle[offset + 2..<offset + 2 + length]))
            offset += 2 + length
        }
        return entries
    }

    /// The C2SP tlog-tiles path of a tile: `tile/<L>/<N>` (or `tile/entries/<N>` for
    /// `level` nil), N in three-digit groups all but the last prefixed with `x`, and
    /// `.p/<W>` for a partial tile of width W.
    public static func tilePath(level: Int?, index: UInt64, partialWidth: Int? = nil) -> String {
        var groups: [String] = []
        var rest = index
        repeat {
            groups.insert(String(format: "%03d", Int(rest % 1000)), at: 0)
            rest /= 1000
        } while rest > 0
        let encoded = groups.enumerated().map { $0.offset == groups.count - 1 ? $0.element : "x" + $0.element }.joined(separator: "/")
        var path = "tile/\(level.map(String.init) ?? "entries")/\(encoded)"
        if let partialWidth { path += ".p/\(partialWidth)" }
        return path
    }

    /// A FHIR R4 AuditEvent for one entry (http://hl7.org/fhir/R4/auditevent.html).
    public static func auditEvent(_ entry: JournalEntry, origin: String) -> [String: Any] {
        var event: [String: Any] = [
            "resourceType": "AuditEvent",
            "id": "\(entry.sequence)",
            "meta": ["source": "urn:osmose:\(origin)"],
            "type": ["system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"],
            "subtype": [["system": "urn:osmose:access-action", "code": entry.action]],
            "action": fhirAction(entry.action),
            "period": ["start": JournalEntry.rfc3339(microseconds: entry.occurredAt), "end": JournalEntry.rfc3339(microseconds: entry.occurredAt)],
            "recorded": JournalEntry.rfc3339(microseconds: entry.sequencedAt),
            "outcome": entry.result == "success" ? "0" : entry.result == "denied" ? "4" : "8",
            "source": [
                "site": origin,
                "observer": ["display": entry.source],
                "type": [["system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"]],
            ],
        ]
        if let reason = entry.reason { event["outcomeDesc"] = reason }
        if let purpose = entry.purpose {
            event["purposeOfEvent"] = [
                ["coding": [["system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": fhirPurpose(purpose)]], "text": purpose]
            ]
        }
        var agent: [String: Any] = ["requestor": true]
        var who: [String: Any] = [:]
        if let user = entry.actorUserID { who["identifier"] = ["system": "urn:osmose:user", "value": user] }
        if let name = entry.actorUsername { who["display"] = name }
        if !who.isEmpty { agent["who"] = who }
        var roles: [[String: Any]] = []
        if let role = entry.actorRole { roles.append(["coding": [["system": "urn:osmose:role", "code": role]], "text": role]) }
        if let team = entry.actorTeam { roles.append(["coding": [["system": "urn:osmose:team", "code": team]], "text": "team \(team)"]) }
        if !roles.isEmpty { agent["role"] = roles }
        if let address = entry.clientIP { agent["network"] = ["address": address, "type": "2"] }
        if let name = entry.actorUsername { agent["name"] = name }
        event["agent"] = [agent]
        var entities: [[String: Any]] = []
        if let patient = entry.patientID {
            entities.append([
                "what": ["reference": "Patient/\(patient)"],
                "type": ["system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"],
                "role": ["system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"],
            ])
        }
        var object: [String: Any] = [
            "type": ["system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"],
            "description": entry.objectType,
        ]
        if let id = entry.objectID { object["what"] = ["identifier": ["system": "urn:osmose:\(entry.objectType)", "value": id]] }
        var details: [[String: Any]] = [["type": "request-id", "valueString": entry.requestID]]
        if let userAgent = entry.userAgent { details.append(["type": "user-agent", "valueString": userAgent]) }
        object["detail"] = details
        entities.append(object)
        event["entity"] = entities
        return event
    }

    /// A FHIR R4 Bundle (type collection) of AuditEvents.
    public static func fhirBundle(_ entries: [JournalEntry], origin: String, now: Int64) throws -> Data {
        let bundle: [String: Any] = [
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": JournalEntry.rfc3339(microseconds: now),
            "total": entries.count,
            "entry": entries.map { ["fullUrl": "urn:osmose:\(origin):\($0.sequence)", "resource": auditEvent($0, origin: origin)] },
        ]
        return try JSONSerialization.data(withJSONObject: bundle, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    static func fhirAction(_ action: String) -> String {
        switch action {
        case "create": return "C"
        case "read", "export": return "R"
        case "update": return "U"
        case "delete": return "D"
        default: return "E"
        }
    }

    static func fhirPurpose(_ purpose: String) -> String {
        switch purpose {
        case "care": return "TREAT"
        case "coordination": return "COC"
        case "administration": return "HOPERAT"
        case "audit": return "HSYSADMIN"
        default: return "PATRQT"
        }
    }
}

/// Standard base64 (RFC 4648 §4) of tree hashes, as the proof formats write them.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Appends the base64 of `bytes` and a newline to `output`.
    static func appendLine(_ bytes: ArraySlice<UInt8>, to output: inout [UInt8]) {
        let groups = bytes.count / 3
        let rest = bytes.count % 3
        let length = (groups + (rest > 0 ? 1 : 0)) * 4 + 1
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: length))
        alphabet.withUnsafeBufferPointer { alphabet in
            bytes.withUnsafeBufferPointer { input in
                output.withUnsafeMutableBufferPointer { all in
                    var out = start
                    var index = 0
                    for _ in 0..<groups {
                        let value = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                        all[out] = alphabet[Int(value >> 18)]
                        all[out + 1] = alphabet[Int(value >> 12 & 0x3F)]
                        all[out + 2] = alphabet[Int(value >> 6 & 0x3F)]
                        all[out + 3] = alphabet[Int(value & 0x3F)]
                        index += 3
                        out += 4
                    }
                    if rest > 0 {
                        let value = UInt32(input[index]) << 16 | (rest == 2 ? UInt32(input[index + 1]) << 8 : 0)
                        all[out] = alphabet[Int(value >> 18)]
                        all[out + 1] = alphabet[Int(value >> 12 & 0x3F)]
                        all[out + 2] = rest == 2 ? alphabet[Int(value >> 6 & 0x3F)] : UInt8(ascii: "=")
                        all[out + 3] = UInt8(ascii: "=")
                        out += 4
                    }
                    all[out] = 0x0A
                }
            }
        }
    }
}
