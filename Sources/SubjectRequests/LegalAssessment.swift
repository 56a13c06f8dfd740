/// The reasoned answer the product proposes to an erasure, objection or
/// portability request, with its legal basis: a pure function of the request's
/// kind and subject and the controller's status, tested without I/O. The DPO
/// confirms it, or decides otherwise with reasons (recorded).
public struct LegalAnswer: Sendable, Hashable, Codable {
    /// The proposed outcome.
    public let outcome: RequestOutcome
    /// Stable codes of the grounds (`gdpr-17-3-b`…), for the evidence file.
    public let grounds: [String]
    /// The legal texts cited.
    public let basis: [String]
    /// The answer's text, in French, for the letter to the requester.
    public let text: String
    /// Whether restriction of processing (art. 18) is offered instead.
    public let offersRestriction: Bool
    /// Whether the product carries the answer out (a staff member's data erased).
    public let carriedOut: Bool
}

/// Whether the controller is public or private (``Settings/SuiteConfiguration/SubjectRequests/Controller``).
public enum ControllerStatus: String, Sendable, Hashable, Codable {
    case `public`, `private`
}

/// The legal assessment of erasure, objection and portability requests.
public enum LegalAssessment {
    /// The proposed answer.
    /// - Throws: ``SubjectRequestError`` `.wrongKind` for access, rectification and restriction, which are carried out, not assessed.
    public static func assess(kind: RequestKind, aboutStaff: Bool, controller: ControllerStatus) throws -> LegalAnswer {
        switch (kind, aboutStaff) {
        case (.erasure, false):
            return LegalAnswer(
                outcome: .refused, grounds: ["gdpr-17-3-b", "gdpr-17-3-c", "csp-r1112-7"],
                basis: [
                    "RGPD art. 17(3)(b) : le traitement est nécessaire au respect d'une obligation légale",
                    "RGPD art. 17(3)(c) : motifs d'intérêt public dans le domaine de la santé publique (art. 9(2)(h) et (i))",
                    "CSP art. R1112-7 : le dossier médical est conservé vingt ans à compter de la date du dernier séjour ou de la dernière consultation externe",
                ],
                text: """
                    Votre demande d'effacement ne peut pas être satisfaite : les informations de votre dossier sont conservées en application \
                    d'une obligation légale (code de la santé publique, article R1112-7 : vingt ans après votre dernier passage, ou jusqu'à vos \
                    vingt-huit ans, ou dix ans après un décès) et pour des motifs d'intérêt public dans le domaine de la santé publique \
                    (RGPD, article 17, paragraphe 3, points b et c). Vous pouvez en revanche demander la limitation de leur traitement \
                    (RGPD, article 18) : votre dossier ne serait plus ouvert, hors urgence ou motif prévu par la loi, et plus exporté.
                    """,
                offersRestriction: true, carriedOut: false)
        case (.erasure, true):
            return LegalAnswer(
                outcome: .partiallyGranted, grounds: ["gdpr-17-1-a", "gdpr-17-3-b", "gdpr-32"],
                basis: [
                    "RGPD art. 17(1)(a) : les données ne sont plus nécessaires après le départ",
                    "RGPD art. 17(3)(b) et art. 32 : l'identifiant de connexion reste dans le journal des accès, conservé pour la traçabilité des accès aux données de santé",
                ],
                text: """
                    Les données personnelles de votre compte qui ne sont plus nécessaires après votre départ ont été effacées : votre nom affiché, \
                    l'empreinte de votre mot de passe ; le compte est désactivé et ses sessions closes. Votre identifiant de connexion est conservé \
                    dans le journal des accès aux dossiers de santé, tenu pour la sécurité des données de santé (RGPD, articles 17, paragraphe 3, \
                    point b, et 32) pendant sa durée de conservation.
                    """,
                offersRestriction: false, carriedOut: true)
        case (.portability, _) where controller == .public:
            return LegalAnswer(
                outcome: .refused, grounds: ["gdpr-20-3", "gdpr-6-1-e"],
                basis: [
                    "RGPD art. 20(3) : le droit à la portabilité ne s'applique pas au traitement nécessaire à l'exécution d'une mission d'intérêt public",
                    "RGPD art. 6(1)(e) : mission d'intérêt public de l'établissement public de santé",
                ],
                text: """
                    Le droit à la portabilité ne s'applique pas aux traitements nécessaires à une mission d'intérêt public (RGPD, article 20, \
                    paragraphe 3), ce qui est le cas du dossier de soins d'un établissement public de santé. Vous pouvez obtenir la \
                    communication de l'ensemble de votre dossier, y compris dans des formats lisibles par un programme (JSON et FHIR), \
                    par une demande d'accès (RGPD, article 15 ; code de la santé publique, article L1111-7).
                    """,
                offersRestriction: false, carriedOut: false)
        case (.portability, _):
            return LegalAnswer(
                outcome: .granted, grounds: ["gdpr-20-1", "gdpr-6-1-b"],
                basis: ["RGPD art. 20(1) : données fournies par la personne, traitées en exécution du contrat de soins (art. 6(1)(b))"],
                text: """
                    Les données vous concernant vous sont transmises dans des formats structurés, couramment utilisés et lisibles par machine \
                    (JSON et FHIR R4, la norme des échanges de données de santé), que vous pouvez transmettre à un autre responsable de traitement \
                    (RGPD, article 20).
                    """,
                offersRestriction: false, carriedOut: false)
        case (.objection, _):
            return LegalAnswer(
                outcome: .refused, grounds: ["gdpr-21-1", "loi-78-17-art-56", "csp-l1112-1"],
                basis: [
                    "RGPD art. 21(1) : motifs légitimes et impérieux du responsable de traitement (continuité et sécurité des soins)",
                    "Loi n° 78-17 art. 56 : le droit d'opposition ne s'applique pas lorsque le traitement répond à une obligation légale",
                    "CSP art. L1112-1 et R1112-7 : tenue et conservation obligatoires du dossier médical",
                ],
                text: """
                    Après examen, votre opposition ne peut pas être retenue pour le dossier de soins : sa tenue et sa conservation sont \
                    imposées par la loi (code de la santé publique, articles L1112-1 et R1112-7), et le droit d'opposition ne s'applique pas \
                    à un traitement qui répond à une obligation légale (loi n° 78-17, article 56). La continuité et la sécurité de vos soins \
                    constituent en outre des motifs légitimes et impérieux (RGPD, article 21, paragraphe 1). Vous pouvez demander la \
                    limitation du traitement (RGPD, article 18) le temps d'un réexamen.
                    """,
                offersRestriction: true, carriedOut: false)
        case (.access, _), (.rectification, _), (.restriction, _):
            throw SubjectRequestError(.wrongKind, "a \(kind.rawValue) request is carried out (osmosectl dsar export, rectify, restrict), not assessed")
        }
    }
}
