import Foundation
import Settings
import Testing

@Suite("policies/keys.yaml")
struct KeyPolicyTests {
    func parse(_ text: String) throws -> KeyPolicy { try KeyPolicy.parse(SettingsDocument(file: "keys.yaml", text: text)) }

    @Test("The shipped policy is valid; omitted values take the defaults")
    func shipped() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let shipped = try KeyPolicy.load(path: root.appendingPathComponent("policies/keys.yaml").path)
        #expect(shipped.cryptoperiodDays == ["column": 365, "blind-index": 365, "pseudonymisation": 730, "journal-signing": 730])
        #expect(shipped.batchSize == 2_000 && shipped.maximumValuesPerSecond == 50_000 && shipped.signingOverlapHours == 168)
        let minimal = try parse("cryptoperiods:\n  column: 200\n")
        #expect(minimal.cryptoperiodDays["column"] == 200 && minimal.cryptoperiodDays["blind-index"] == 365 && minimal.batchSize == 2_000)
    }

    @Test("Out-of-range values, unknown keys and a missing section name their line")
    func refusals() throws {
        #expect(throws: ConfigurationError.self) { try parse("rotation:\n  batch_size: 100\n") }
        for (text, fragment) in [
            ("cryptoperiods:\n  column: 0\n", "keys.yaml:2"), ("cryptoperiods:\n  colum: 30\n", "keys.yaml:2"),
            ("cryptoperiods:\n  column: 30\nrotation:\n  batch_size: 5\n", "keys.yaml:4"),
            ("cryptoperiods:\n  column: 30\njournal_signing:\n  co_signing_hours: 9000\n", "keys.yaml:4"),
            ("cryptoperiods:\n  column: 30\njournal_signing:\n  overlap: 2\n", "keys.yaml:4"),
        ] {
            do {
                _ = try parse(text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect("\(error)".contains(fragment), "\(error)")
            }
        }
    }
}
