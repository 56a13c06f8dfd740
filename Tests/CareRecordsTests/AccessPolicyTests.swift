import CareRecords
import Foundation
import Settings
import Testing
import TestSupport

@Suite("The access policy: every rule states its scope")
struct AccessPolicyTests {
    func parse(_ text: String) throws -> AccessPolicy { try AccessPolicy.parse(SettingsDocument(file: "access.yaml", text: text)) }

    @Test("A rule without scope is refused, naming the rule's line; the shipped policy states every scope")
    func scopeRequired() throws {
        let missing = """
            default: deny
            rules:
              - role: agent
                resource: patient
                actions: [read]
                purposes: [care]
                scope: all
              - role: agent
                resource: episode
                actions: [read]
                purposes: [care]
            """
        let error = #expect(throws: ConfigurationError.self) { try parse(missing) }
        #expect(error.map { "\($0)" }?.contains("access.yaml:8") == true, "\(error.map { "\($0)" } ?? "")")
        #expect(error.map { "\($0)" }?.contains("scope") == true)
        let explicit = try parse(missing + "\n    scope: team\n")
        #expect(explicit.rules.map(\.scope) == [.all, .team])
        let shipped = try AccessPolicy.load(path: repositoryRoot.appendingPathComponent("policies/access.yaml").path)
        #expect(shipped.rules.count == 7)
        #expect(shipped.decide(role: .agent, resource: .episode, action: "read", purpose: .care).teamScoped)
        #expect(!shipped.decide(role: .agent, resource: .patient, action: "read", purpose: .care).teamScoped)
    }
}
