import Foundation
import Settings
import Testing

@Suite("policies/backup.yaml")
struct BackupPolicyTests {
    func parse(_ text: String) throws -> BackupPolicy { try BackupPolicy.parse(SettingsDocument(file: "backup.yaml", text: text)) }

    @Test("The shipped policy is valid; omitted values take the defaults; a zero floor, a negative count and unknown keys name their line")
    func policy() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        #expect(try BackupPolicy.load(path: root.appendingPathComponent("policies/backup.yaml").path) == .defaults)
        #expect(try parse("keep:\n  last: 9\n") == BackupPolicy(keepLast: 9, daily: 7, weekly: 5, monthly: 12, floor: 2))
        for (text, fragment) in [
            ("keep:\n  floor: 0\n", "backup.yaml:2"), ("keep:\n  daily: -1\n", "backup.yaml:2"), ("keep:\n  yearly: 3\n", "backup.yaml:2"),
            ("retention:\n  last: 3\n", "backup.yaml:1"),
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
