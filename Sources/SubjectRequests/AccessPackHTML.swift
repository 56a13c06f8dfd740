import Foundation

/// The access pack as one self-contained, printable HTML document in French: no
/// script, no external resource, styles inline, so that it opens anywhere and
/// prints as the patient's copy.
public enum AccessPackHTML {
    /// The document.
    /// - Parameter establishment: the controller's name, printed in the heading.
    public static func render(_ pack: AccessPack, establishment: String = "Établissement de santé") -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="fr">
            <head>
            <meta charset="utf-8">
            <title>Communication du dossier — demande n° \(pack.request.number)</title>
            <style>
            body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10.5pt; color: #111; margin: 2em auto; max-width: 60em; line-height: 1.4; }
            h1 { font-size: 16pt; border-bottom: 2px solid #333; padding-bottom: .3em; }
            h2 { font-size: 13pt; margin-top: 1.6em; border-bottom: 1px solid #999; page-break-after: avoid; }
            h3 { font-size: 11pt; margin: 1em 0 .3em; }
            table { border-collapse: collapse; width: 100%; margin: .5em 0; page-break-inside: auto; }
            th, td { border: 1px solid #bbb; padding: .25em .45em; text-align: left; vertical-align: top; }
            th { background: #eee; }
            tr { page-break-inside: avoid; }
            dl { display: grid; grid-template-columns: 16em 1fr; gap: .15em 1em; margin: .3em 0 1em; }
            dt { font-weight: bold; } dd { margin: 0; white-space: pre-wrap; }
            .note { font-size: 9pt; color: #444; }
            .occulte { background: #ddd; }
            pre { font-size: 8pt; white-space: pre-wrap; word-break: break-all; background: #f6f6f6; padding: .5em; }
            @media print { body { margin: 0; max-width: none; } }
            </style>
            </head>
            <body>
            <h1>\(escape(establishment)) — communication de votre dossier</h1>
            <dl>
            <dt>Demande</dt><dd>n° \(pack.request.number), \(escape(kindLabel(pack.request.kind))), reçue le \(pack.request.receivedOn.french)</dd>
            <dt>Demandeur</dt><dd>\(escape(capacityLabel(pack.request.capacity)))</dd>
            <dt>Document établi le</dt><dd>\(escape(pack.builtAt)) (UTC)</dd>
            <dt>Référence du patient</dt><dd>\(pack.patientID.uuidString.lowercased())</dd>
            </dl>
            <p>Ce document vous communique toutes les informations vous concernant que détient le système de suivi des prises en charge
            (article 15 du règlement général sur la protection des données, article L1111-7 du code de la santé publique), déchiffrées,
            ainsi que la liste des accès à votre dossier enregistrés dans le journal des accès, avec leur date, leur finalité et leur
            résultat (CJUE, 22 juin 2023, C-579/21). \(pack.staffNames
                ? "Les membres du personnel sont nommés, sur décision du délégué à la protection des données."
                : "Les membres du personnel y figurent par leur fonction et leur équipe.")
            Les passages concernant des tiers ont pu être occultés (article L1111-7 du code de la santé publique) ; leur emplacement et
            leur motif sont indiqués en fin de document.</p>

            """
        for table in pack.tables where !table.rows.isEmpty {
            html += "<h2>\(escape(table.title))</h2>\n"
            if table.table == "care.record_versions" {
                html += versions(table, pack)
                continue
            }
            for row in table.rows {
                html += "<dl>\n"
                for column in row.columns.keys.sorted(by: { order($0, $1, table: table.table) }) {
                    html += "<dt>\(escape(label(column)))</dt><dd\(row.columns[column]!.source == .redacted ? " class=\"occulte\"" : "")>\(cell(row.columns[column]!, pack))</dd>\n"
                }
                html += "</dl>\n"
            }
        }
        html += consultations(pack)
        html += staffSection(pack)
        if !pack.redactions.isEmpty {
            html += "<h2>Passages occultés</h2>\n<table><tr><th>Où</th><th>Motif</th><th>Occurrences</th></tr>\n"
            for redaction in pack.redactions {
                html += "<tr><td>\(escape(redaction.table)) \(escape(redaction.row)), \(escape(label(redaction.column)))</td><td>\(redaction.reason == .thirdParty ? "informations concernant un tiers" : "informations concernant un autre patient")</td><td>\(redaction.places)</td></tr>\n"
            }
            html += "</table>\n"
        }
        html += "<h2>Informations détenues mais non communiquées</h2>\n<ul>\n"
        for withheld in pack.withheld { html += "<li>\(escape(withheld.table)).\(escape(withheld.column)) : \(escape(withheld.reason))</li>\n" }
        html += "</ul>\n"
        html += """
            <h2>Vérifier la liste des accès</h2>
            <p>Chaque accès porte son numéro dans le journal. Le journal est un arbre de Merkle (RFC 9162) dont l'état est signé
            (« point de contrôle » n° \(pack.journal.checkpointID), \(pack.journal.treeSize) entrées, journal « \(escape(pack.journal.origin)) »).
            Le fichier <code>journal/proofs</code> joint contient, pour chaque accès, une preuve d'inclusion au format c2sp.org/tlog-proof
            que tout outil conforme vérifie contre la clé publique du journal, que l'établissement publie.</p>
            <pre>\(escape(pack.journal.checkpoint))</pre>
            <p class="note">Vos droits : vous pouvez demander la rectification d'informations inexactes (RGPD art. 16) et saisir la Commission
            nationale de l'informatique et des libertés (CNIL, www.cnil.fr) d'une réclamation.</p>
            </body>
            </html>

            """
        return html
    }

    static func versions(_ table: PackTable, _ pack: AccessPack) -> String {
        var html = "<table><tr><th>Élément</th><th>Version</th><th>Date</th><th>Par</th><th>Champs modifiés et valeurs après la modification</th></tr>\n"
        for row in table.rows {
            let fields = (row.columns["changed_fields"]?.value ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").map(String.init)
            let snapshot = (row.columns["snapshot"]?.value).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } ?? [:]
            let values = fields.map { field in "\(label(field)) : \(escape(describe(snapshot[field])))" }.joined(separator: "<br>")
            var author = row.columns["changed_by"].map { cell($0, pack) } ?? ""
            if row.columns["changed_by"]?.value == nil { author = "délégué à la protection des données (demande d'exercice de droits)" }
            html += "<tr><td>\(escape(recordTypeLabel(row.columns["record_type"]?.value ?? ""))) \(escape(row.columns["record_id"]?.value ?? ""))</td>"
            html += "<td>\(escape(row.columns["version"]?.value ?? ""))</td><td>\(escape(row.columns["changed_at"]?.value ?? ""))</td><td>\(author)</td>"
            html += "<td\(row.columns["snapshot"]?.source == .redacted ? " class=\"occulte\"" : "")>\(values)</td></tr>\n"
        }
        return html + "</table>\n"
    }

    static func consultations(_ pack: AccessPack) -> String {
        var html = "<h2>Accès à votre dossier (\(pack.consultations.count))</h2>\n"
        html += "<table><tr><th>N° journal</th><th>Date (UTC)</th><th>Action</th><th>Finalité</th><th>Résultat</th><th>Par</th><th>Objet</th></tr>\n"
        for consultation in pack.consultations {
            var who = [consultation.actorRole.map(roleLabel), consultation.actorTeam.map { "équipe \($0)" }].compactMap { $0 }.joined(separator: ", ")
            if let name = consultation.actorName { who += " — \(name)" }
            if who.isEmpty { who = consultation.source }
            html += "<tr><td>\(consultation.sequence)</td><td>\(escape(consultation.occurredAt))</td><td>\(escape(actionLabel(consultation.action)))</td>"
            html += "<td>\(escape(consultation.purpose.map(purposeLabel) ?? "—"))</td><td>\(escape(resultLabel(consultation.result)))</td>"
            html += "<td>\(escape(who))</td><td>\(escape(consultation.objectType))</td></tr>\n"
        }
        return html + "</table>\n"
    }

    static func staffSection(_ pack: AccessPack) -> String {
        guard !pack.staff.isEmpty else { return "" }
        var html = "<h2>Membres du personnel cités</h2>\n<table><tr><th>Référence</th><th>Fonction</th><th>Équipe</th>\(pack.staffNames ? "<th>Nom</th>" : "")</tr>\n"
        for member in pack.staff {
            html += "<tr><td>\(escape(member.reference))</td><td>\(escape(roleLabel(member.role)))</td><td>\(escape(member.team ?? "—"))</td>"
            if pack.staffNames { html += "<td>\(escape(member.name ?? "—"))</td>" }
            html += "</tr>\n"
        }
        return html + "</table>\n"
    }

    static func cell(_ cell: PackCell, _ pack: AccessPack) -> String {
        guard let value = cell.value else { return "—" }
        switch cell.source {
        case .staff:
            guard let member = pack.staff.first(where: { $0.reference == value }) else { return escape(value) }
            let who = [roleLabel(member.role), member.team.map { "équipe \($0)" }].compactMap { $0 }.joined(separator: ", ")
            return escape(member.name.map { "\($0) (\(who))" } ?? "\(who) [\(value)]")
        case .team: return "équipe " + escape(value)
        default: return escape(value)
        }
    }

    static func describe(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "—"
        case let text as String: return text
        case let number as NSNumber: return number.stringValue
        case let list as [Any]: return list.map { describe($0) }.joined(separator: " ; ")
        case let object as [String: Any]: return object.keys.sorted().map { "\($0) : \(describe(object[$0]))" }.joined(separator: ", ")
        default: return String(describing: value!)
        }
    }

    /// Key columns first, then the others in alphabetical order.
    static func order(_ a: String, _ b: String, table: String) -> Bool {
        let first = ["id", "version", "last_name", "first_name", "birth_date", "sex", "ins", "arrival_at", "reason", "written_at", "body"]
        let (ia, ib) = (first.firstIndex(of: a) ?? Int.max, first.firstIndex(of: b) ?? Int.max)
        return ia != ib ? ia < ib : a < b
    }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    static let labels: [String: String] = [
        "id": "Identifiant", "version": "Version", "last_name": "Nom", "first_name": "Prénom", "birth_date": "Date de naissance", "sex": "Sexe",
        "ins": "Identifiant national de santé (INS)", "search_name": "Empreinte de recherche (nom)", "search_ins": "Empreinte de recherche (INS)",
        "blind_key_id": "Clé de l'empreinte", "created_at": "Créé le", "created_by": "Créé par", "updated_at": "Modifié le", "updated_by": "Modifié par",
        "patient_id": "Patient", "team_id": "Équipe", "arrival_at": "Arrivée", "arrival_mode": "Mode d'arrivée", "reason": "Motif",
        "location": "Lieu", "box_number": "Box", "worrying": "Situation préoccupante", "accompanied": "Accompagné", "box_status": "Box",
        "imaging_status": "Imagerie", "imaging_note": "Note d'imagerie", "lab_status": "Biologie", "lab_note": "Note de biologie",
        "psychiatric_care": "Prise en charge psychiatrique", "activity_status": "En cours", "status": "État", "closed_at": "Clôturé le",
        "episode_id": "Prise en charge", "shared_at": "Partagé le", "author_id": "Auteur", "author_team_id": "Équipe de l'auteur",
        "addressed_team_id": "Adressée à l'équipe", "category": "Catégorie", "body": "Texte", "checklist": "Liste de vérification",
        "written_at": "Écrit le", "retracted_at": "Retiré le", "retracted_by": "Retiré par", "record_type": "Élément", "record_id": "Élément n°",
        "changed_at": "Modifié le", "changed_by": "Modifié par", "changed_fields": "Champs modifiés", "snapshot": "État après la modification",
        "restricted_at": "Limité le", "restricted_by": "Limité par", "lifted_at": "Levée le", "lifted_by": "Levée par", "lift_reason": "Motif de la levée",
        "kind": "Nature", "requester_name": "Demandeur", "requester_contact": "Adresse du demandeur", "requester_capacity": "Qualité du demandeur",
        "received_at": "Reçue le", "received_on": "Jour de réception", "identity_check": "Pièces d'identité vues", "identity_checked_at": "Identité vérifiée le",
        "identity_checked_by": "Identité vérifiée par", "outcome": "Issue", "due_on": "Échéance", "citation": "Fondement", "rule": "Règle",
        "file_name": "Nom du fichier", "content": "Contenu", "media_type": "Type", "size": "Taille (octets)", "removed_text": "Passage occulté",
        "ground": "Fondement (RGPD art. 18(2))", "endpoint": "Action", "occurred_at": "Le", "user_id": "Par", "fields": "Champs",
        "old_version": "Version avant", "new_version": "Version après", "rectified_at": "Rectifié le",
    ]

    static func label(_ column: String) -> String { labels[column] ?? column }

    static func kindLabel(_ kind: RequestKind) -> String {
        switch kind {
        case .access: "droit d'accès"
        case .rectification: "droit de rectification"
        case .restriction: "droit à la limitation"
        case .erasure: "droit à l'effacement"
        case .objection: "droit d'opposition"
        case .portability: "droit à la portabilité"
        }
    }

    static func capacityLabel(_ capacity: RequesterCapacity) -> String {
        switch capacity {
        case .patient: "le patient lui-même"
        case .legalRepresentative: "son représentant légal"
        case .heir: "un ayant droit"
        case .chosenDoctor: "le médecin qu'il a désigné"
        case .staffMember: "un membre du personnel"
        }
    }

    static func roleLabel(_ role: String) -> String {
        switch role {
        case "agent": "soignant"
        case "manager": "cadre de santé"
        case "admin": "administrateur des comptes"
        case "dpo": "délégué à la protection des données"
        case "security-officer": "responsable de la sécurité"
        case "sysadmin": "administrateur système"
        case "system": "programme du système"
        default: role
        }
    }

    static func actionLabel(_ action: String) -> String {
        switch action {
        case "read": "consultation"
        case "create": "création"
        case "update": "modification"
        case "delete": "retrait"
        case "export": "export"
        case "subject-request": "traitement d'une demande d'exercice de droits"
        default: action
        }
    }

    static func purposeLabel(_ purpose: String) -> String {
        switch purpose {
        case "care": "soins"
        case "coordination": "coordination des soins"
        case "administration": "administration"
        case "audit": "contrôle"
        case "subject-request": "demande d'exercice de droits"
        default: purpose
        }
    }

    static func resultLabel(_ result: String) -> String {
        switch result {
        case "success": "accordé"
        case "denied": "refusé"
        default: "erreur"
        }
    }

    static func recordTypeLabel(_ type: String) -> String {
        switch type {
        case "patient": "identité"
        case "episode": "prise en charge"
        case "transmission": "transmission"
        default: type
        }
    }
}
