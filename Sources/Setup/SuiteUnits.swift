import Foundation
public import Settings

/// The units the first-run set-up enables, in the order it enables them: the
/// migrations first, then the journal (every other daemon writes to it), the
/// daemons, then the timers. osmose-setup reads this list from
/// `osmosectl setup --units`; `osmosectl setup --check` checks the same list.
public enum SuiteUnits {
    /// What the host has, which decides the timers.
    public struct Conditions: Sendable, Equatable {
        /// Backup recipients are configured: full and incremental backups.
        public var backups: Bool
        /// The backup identity's credential exists: the verify and the restore drill.
        public var backupIdentity: Bool
        /// /etc/osmose/archive-recipients.txt exists: osmose-retentiond loads it as a
        /// credential, so without it every run would fail.
        public var archiveRecipients: Bool

        public init(backups: Bool, backupIdentity: Bool, archiveRecipients: Bool) {
            self.backups = backups
            self.backupIdentity = backupIdentity
            self.archiveRecipients = archiveRecipients
        }

        /// The conditions as this host meets them: `configuration`'s backup recipients,
        /// the backup identity's credential in `credentials`, the archive recipients' file.
        public static func onThisHost(configuration: SuiteConfiguration, credentials: String) -> Conditions {
            Conditions(
                backups: !configuration.backup.recipients.isEmpty,
                backupIdentity: FileManager.default.fileExists(atPath: "\(credentials)/backup-identity.cred"),
                archiveRecipients: FileManager.default.fileExists(atPath: archiveRecipientsFile))
        }
    }

    /// Where osmose-setup puts the suite's encrypted credentials.
    public static let credentialsDirectory = "/etc/osmose/credentials"

    /// The file osmose-retentiond's unit loads as its archive-recipients credential.
    public static let archiveRecipientsFile = "/etc/osmose/archive-recipients.txt"

    /// The units to enable, in order, with why a timer is left off when it is.
    public static func toEnable(_ conditions: Conditions) -> (units: [String], leftOff: [(unit: String, reason: String)]) {
        var units = [
            "osmose-migrate.service", "osmose-journald.socket", "osmose-journald.service", "osmose-care.service", "osmose-console.service",
            "osmose-dsard.service", "osmose-keyd.timer",
        ]
        var leftOff: [(String, String)] = []
        if conditions.archiveRecipients {
            units.append("osmose-retentiond.timer")
        } else {
            leftOff.append(("osmose-retentiond.timer", "\(archiveRecipientsFile) is missing (the cold archives' recipients, age1… a line)"))
        }
        let backupTimers = ["osmose-backupd-full.timer", "osmose-backupd-incremental.timer"]
        let identityTimers = ["osmose-backup-verify.timer", "osmose-backup-drill.timer"]
        if conditions.backups {
            units += backupTimers
            if conditions.backupIdentity {
                units += identityTimers
            } else {
                leftOff += identityTimers.map { ($0, "no backup-identity credential (osmose-setup --backup-identity FILE)") }
            }
        } else {
            leftOff += (backupTimers + identityTimers).map { ($0, "no backup recipients (osmose-setup --backup-recipient age1…)") }
        }
        return (units, leftOff)
    }
}
