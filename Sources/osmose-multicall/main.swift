// The Debian package's one executable: osmosectl and every daemon, chosen by the
// name it is started under (/usr/bin/osmosectl and /usr/sbin/osmose-* are links to
// /usr/lib/osmose/osmose). One copy of the statically linked Swift runtime, instead
// of eight, makes the package an eighth of the size and its release build one link.
// Each branch runs exactly what that program's own executable target runs.
import BackupService
import CareService
import ConsoleService
import DaemonRuntime
import Foundation
import Glibc
import JournalService
import KeyService
import OsmoseControl
import RetentionService
import SubjectRequestService

setlocale(LC_CTYPE, "C.UTF-8")
let programs = "osmosectl, osmose-care, osmose-journald, osmose-keyd, osmose-backupd, osmose-retentiond, osmose-dsard, osmose-console"
let name = (CommandLine.arguments.first.map { ($0 as NSString).lastPathComponent }) ?? ""
switch name {
case "osmosectl":
    do {
        try await Osmosectl.runFromCommandLine()
    } catch {
        Osmosectl.exit(withError: error)
    }
case "osmose-care": exit(await DaemonLauncher.run(CareDaemon.self))
case "osmose-journald": exit(await DaemonLauncher.run(JournalDaemon.self))
case "osmose-keyd": exit(await DaemonLauncher.run(KeyDaemon.self))
case "osmose-backupd":
    BackupDaemon.tuneAllocator()
    exit(await DaemonLauncher.run(BackupDaemon.self))
case "osmose-retentiond": exit(await DaemonLauncher.run(RetentionDaemon.self))
case "osmose-dsard": exit(await DaemonLauncher.run(SubjectRequestDaemon.self))
case "osmose-console": exit(await DaemonLauncher.run(ConsoleDaemon.self))
default:
    FileHandle.standardError.write(Data("osmose: started as '\(name)'; start it through one of its links: \(programs)\n".utf8))
    exit(64)
}
