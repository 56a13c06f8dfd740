import CareRecords
import Foundation
import Hummingbird
import Journal
import Settings
import StaffAccounts

extension Console {
    /// The DPO's pages: the policies in force, rendered readably from the same files
    /// the daemons read (a malformed file is shown as such, with its line).
    func addDPORoutes(to router: Router<ConsoleRequestContext>) {
        let console = self
        router.get("/dpo/politiques") { request, context in
            await console.serve(request, context, .read, "console-policies", audience: .roles([.dpo])) { _ in console.policies() }
        }
    }

    struct PolicyLine: Sendable {
        let label: String
        let value: String
    }

    struct PolicySection: Sendable {
        let title: String
        let file: String
        let lines: [PolicyLine]
        let error: String?
    }

    struct AccessRuleRow: Sendable {
        let role: String
        let resource: String
        let actions: String
        let purposes: String
        let scope: String
    }

    struct PoliciesModel: Sendable {
        let sections: [PolicySection]
        let accessFile: String
        let accessRules: [AccessRuleRow]
        let accessError: String?
    }

    func policies() -> ConsoleView {
        let directory = configuration.paths.policies
        func section(_ title: String, _ file: String, _ read: () throws -> [PolicyLine]) -> PolicySection {
            do {
                return PolicySection(title: renderer.text(title), file: file, lines: try read(), error: nil)
            } catch {
                // The file's own error names its path, line and reason; it holds no personal data.
                return PolicySection(title: renderer.text(title), file: file, lines: [], error: "\(error)")
            }
        }
        let retentionPath = directory + "/retention.yaml"
        let retention = section("policy_retention", retentionPath) {
            let policy = try RetentionPolicy.load(path: retentionPath)
            return [
                PolicyLine(label: renderer.text("policy_journal_online"), value: "\(policy.journalOnlineMonths) \(renderer.text("unit_months"))"),
                PolicyLine(label: renderer.text("policy_journal_archive"), value: "\(policy.journalArchiveYears) \(renderer.text("unit_years"))"),
                PolicyLine(label: renderer.text("policy_care_records"), value: "\(policy.careRecordYears) \(renderer.text("unit_years"))"),
                PolicyLine(label: renderer.text("policy_legal_holds"), value: renderer.text(policy.honourLegalHolds ? "yes" : "no")),
            ]
        }
        let backupPath = configuration.backupPolicyPath
        let backup = section("policy_backup", backupPath) {
            let policy = try BackupPolicy.load(path: backupPath)
            return [
                PolicyLine(label: renderer.text("policy_backup_last"), value: "\(policy.keepLast)"),
                PolicyLine(label: renderer.text("policy_backup_daily"), value: "\(policy.daily)"),
                PolicyLine(label: renderer.text("policy_backup_weekly"), value: "\(policy.weekly)"),
                PolicyLine(label: renderer.text("policy_backup_monthly"), value: "\(policy.monthly)"),
                PolicyLine(label: renderer.text("policy_backup_floor"), value: "\(policy.floor)"),
            ]
        }
        let keysPath = configuration.keyPolicyPath
        let keys = section("policy_keys", keysPath) {
            let policy = try KeyPolicy.load(path: keysPath)
            return policy.cryptoperiodDays.sorted { $0.key < $1.key }.map {
                PolicyLine(label: "\(renderer.text("policy_cryptoperiod")) \($0.key)", value: "\($0.value) \(renderer.text("unit_days"))")
            } + [PolicyLine(label: renderer.text("policy_signing_overlap"), value: "\(policy.signingOverlapHours) \(renderer.text("unit_hours"))")]
        }
        let accessPath = configuration.accessPolicyPath
        var rules: [AccessRuleRow] = []
        var accessError: String?
        do {
            rules = try AccessPolicy.load(path: accessPath).rules.map { rule in
                AccessRuleRow(
                    role: rule.role.rawValue, resource: rule.resource.rawValue, actions: rule.actions.sorted().joined(separator: ", "),
                    purposes: rule.purposes.map(\.rawValue).sorted().joined(separator: ", "), scope: renderer.text("scope_" + rule.scope.rawValue))
            }
        } catch {
            accessError = "\(error)"
        }
        return .page(
            "policies", title: "policies_title", PoliciesModel(sections: [retention, backup, keys], accessFile: accessPath, accessRules: rules, accessError: accessError))
    }
}
