import Foundation
import SubjectRequests
import Testing
import TestSupport

@Suite("Reasoned answers and the evidence chain, without I/O")
struct AnswerAndChainTests {
    @Test("Erasure of health data is refused citing GDPR art. 17(3)(c) and CSP R1112-7, with restriction offered")
    func erasureRefused() throws {
        for controller in [ControllerStatus.public, .private] {
            let answer = try LegalAssessment.assess(kind: .erasure, aboutStaff: false, controller: controller)
            #expect(answer.outcome == .refused && answer.offersRestriction && !answer.carriedOut)
            #expect(answer.grounds.contains("gdpr-17-3-c") && answer.grounds.contains("csp-r1112-7"))
            #expect(answer.basis.contains { $0.contains("17(3)(c)") } && answer.basis.contains { $0.contains("R1112-7") })
            #expect(answer.text.contains("limitation"))
        }
    }

    @Test("A departed staff member's data outside the health record is erased; the login name kept for the access journal")
    func staffErasure() throws {
        let answer = try LegalAssessment.assess(kind: .erasure, aboutStaff: true, controller: .public)
        #expect(answer.carriedOut && answer.outcome == .partiallyGranted && answer.grounds.contains("gdpr-17-3-b"))
    }

    @Test("Portability is not owed for a public task (art. 20(3)); owed by a private controller")
    func portability() throws {
        let public_ = try LegalAssessment.assess(kind: .portability, aboutStaff: false, controller: .public)
        #expect(public_.outcome == .refused && public_.grounds.contains("gdpr-20-3") && public_.text.contains("article 15"))
        #expect(try LegalAssessment.assess(kind: .portability, aboutStaff: false, controller: .private).outcome == .granted)
    }

    @Test("An objection is assessed (art. 21) and, for the care record, not retained (loi 78-17 art. 56)")
    func objection() throws {
        let answer = try LegalAssessment.assess(kind: .objection, aboutStaff: false, controller: .public)
        #expect(answer.outcome == .refused && answer.grounds == ["gdpr-21-1", "loi-78-17-art-56", "csp-l1112-1"] && answer.offersRestriction)
    }

    @Test("Access, rectification and restriction are carried out, not assessed")
    func carriedOut() {
        for kind in [RequestKind.access, .rectification, .restriction] {
            let error = #expect(throws: SubjectRequestError.self) { try LegalAssessment.assess(kind: kind, aboutStaff: false, controller: .public) }
            #expect(error?.code == .wrongKind)
        }
    }

    static func chain(_ count: Int, request: UUID) throws -> [EvidenceStep] {
        var steps: [EvidenceStep] = []
        for index in 0..<count {
            steps.append(
                try EvidenceChain.step(
                    after: steps.last, requestID: request, occurredAt: 1_800_000_000_000_000 + Int64(index), actor: "dpo@host via osmosectl",
                    kind: ["opened", "identity-checked", "pack-approved", "pack-released", "closed"][index % 5], details: ["n": String(index)],
                    journalRequestID: "j\(index)"))
        }
        return steps
    }

    @Test("A whole chain verifies; a step altered, removed, swapped or moved to another request is named")
    func chainTampering() throws {
        var generator = TestSeed.generator(test: "chainTampering")
        let request = UUID.random(using: &generator)
        let steps = try Self.chain(6, request: request)
        #expect(EvidenceChain.problems(in: steps, requestID: request).isEmpty)
        #expect(steps[0].previousHash == EvidenceChain.seed(for: request))
        #expect(EvidenceChain.journalReason(steps[2]).hasPrefix("dsar.pack-approved sha256:"))

        let victim = Int.random(in: 0..<steps.count, using: &generator)
        var altered = steps
        let step = altered[victim]
        altered[victim] = EvidenceStep(
            requestID: step.requestID, position: step.position, occurredAt: step.occurredAt, actor: step.actor, kind: step.kind, details: ["n": "forged"],
            body: step.body.replacingOccurrences(of: "\"n\":\"\(victim)\"", with: "\"n\":\"forged\""), previousHash: step.previousHash, hash: step.hash,
            journalRequestID: step.journalRequestID)
        #expect(EvidenceChain.problems(in: altered, requestID: request).contains("step \(victim + 1): its hash does not match its content"), "step \(victim + 1)")

        var removed = steps
        removed.remove(at: 2)
        #expect(!EvidenceChain.problems(in: removed, requestID: request).isEmpty)
        var swapped = steps
        swapped.swapAt(1, 3)
        #expect(!EvidenceChain.problems(in: swapped, requestID: request).isEmpty)
        #expect(EvidenceChain.problems(in: steps, requestID: UUID.random(using: &generator)).contains("step 1: does not follow the step before it"))
        // Columns changed beside an intact body (e.g. the kind column).
        let first = steps[0]
        let relabelled = EvidenceStep(
            requestID: first.requestID, position: first.position, occurredAt: first.occurredAt, actor: first.actor, kind: "closed", details: first.details,
            body: first.body, previousHash: first.previousHash, hash: first.hash, journalRequestID: first.journalRequestID)
        #expect(EvidenceChain.problems(in: [relabelled] + steps.dropFirst(), requestID: request) == ["step 1: its stored columns differ from its hashed content"])
    }
}
