import CareRecords
import Foundation

/// The printable handover sheet of an episode: plain HTML with print styles, every
/// value escaped.
enum HandoverSheet {
    static func render(_ export: EpisodeExport) -> String {
        let patient = export.patient
        let episode = export.episode
        func row(_ label: String, _ value: String?) -> String {
            "<tr><th>\(escape(label))</th><td>\(escape(value ?? "—"))</td></tr>"
        }
        let transmissions = export.transmissions.map { transmission in
            let checklist = transmission.checklist.map { "<li>\($0.done ? "☑" : "☐") \(escape($0.label))</li>" }.joined()
            return """
                <article\(transmission.retractedAt == nil ? "" : " class=\"retracted\"")>
                <h3>\(escape(CareJSON.timestamp(transmission.writtenAt))) · \(escape(transmission.author)) (\(escape(transmission.authorTeam)))\(transmission.addressedTeam.map { " → " + escape($0) } ?? "") · \(escape(transmission.category.rawValue))</h3>
                <p>\(escape(transmission.body ?? "—").replacingOccurrences(of: "\n", with: "<br>"))</p>
                \(checklist.isEmpty ? "" : "<ul>\(checklist)</ul>")
                \(transmission.retractedAt.map { "<p><em>Retracted \(escape(CareJSON.timestamp($0)))</em></p>" } ?? "")
                </article>
                """
        }.joined(separator: "\n")
        return """
            <!DOCTYPE html>
            <html lang="fr"><head><meta charset="utf-8"><title>Fiche de transmission</title>
            <style>
            body { font-family: sans-serif; margin: 2em; } table { border-collapse: collapse; }
            th { text-align: left; padding-right: 1em; } td, th { border-bottom: 1px solid #ccc; padding: 0.2em 0.5em; }
            article { border-left: 3px solid #557; padding-left: 0.8em; margin: 1em 0; } .retracted { opacity: 0.5; text-decoration: line-through; }
            footer { margin-top: 2em; font-size: 0.8em; color: #555; } @media print { body { margin: 0; } }
            </style></head><body>
            <h1>Fiche de transmission — \(escape((patient.lastName ?? patient.pseudonym ?? "").uppercased())) \(escape(patient.firstName ?? ""))</h1>
            <table>
            \(row("Né(e) le", patient.birthDate))\(row("Sexe", patient.sex.rawValue))\(row("INS", patient.ins))
            \(row("Équipe", episode.team))\(row("Partagé avec", episode.sharedWith.joined(separator: ", ")))
            \(row("Arrivée", CareJSON.timestamp(episode.arrivalAt)))\(row("Mode", episode.arrivalMode.rawValue))
            \(row("Motif", episode.reason))\(row("Lieu / box", [episode.location, episode.boxNumber].compactMap { $0 }.joined(separator: " / ")))
            \(row("Patient inquiétant", episode.worrying ? "oui" : "non"))\(row("Accompagné", episode.accompanied ? "oui" : "non"))
            \(row("Box", episode.boxStatus.rawValue))\(row("Imagerie", episode.imagingStatus.rawValue + (episode.imagingNote.map { " — " + $0 } ?? "")))
            \(row("Biologie", episode.labStatus.rawValue + (episode.labNote.map { " — " + $0 } ?? "")))
            \(row("Prise en charge psychiatrique", episode.psychiatricCare?.rawValue))\(row("Activité en cours", episode.activityStatus))
            \(row("Statut", episode.status))\(row("Durée de prise en charge", "\(episode.timeInCareSeconds / 60) min"))
            </table>
            <h2>Transmissions</h2>
            \(transmissions.isEmpty ? "<p>Aucune transmission.</p>" : transmissions)
            <footer>Exporté le \(escape(CareJSON.timestamp(export.exportedAt))) par \(escape(export.exportedBy)). Document contenant des données de santé : ne pas diffuser.</footer>
            </body></html>
            """
    }

    static func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }
}
