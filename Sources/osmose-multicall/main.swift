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
/// Each program the executable runs, by the name it is started under; scripts/package
/// makes one link for each (`osmose --programs` lists them).
let programs: [(name: String, run: @Sendable () async -> Int32)] = [
    ("osmosectl", {
        do {
            try await Osmosectl.runFromCommandLine()
        } catch {
            Osmosectl.exit(withError: error)
        }
        return 0
    }),
    ("osmose-care", { await DaemonLauncher.run(CareDaemon.self) }),
    ("osmose-journald", { await DaemonLauncher.run(JournalDaemon.self) }),
    ("osmose-keyd", { await DaemonLauncher.run(KeyDaemon.self) }),
    ("osmose-backupd", {
        BackupDaemon.tuneAllocator()
        return await DaemonLauncher.run(BackupDaemon.self)
    }),
    ("osmose-retentiond", { await DaemonLauncher.run(RetentionDaemon.self) }),
    ("osmose-dsard", { await DaemonLauncher.run(SubjectRequestDaemon.self) }),
    ("osmose-console", { await DaemonLauncher.run(ConsoleDaemon.self) }),
]
let name = (CommandLine.arguments.first.map { ($0 as NSString).lastPathComponent }) ?? ""
if let program = programs.first(where: { $0.name == name }) {
    exit(await program.run())
}
if name == "osmose" && CommandLine.arguments.dropFirst() == ["--programs"] {
    for program in programs { print(program.name) }
    exit(0)
}
FileHandle.standardError.write(
    Data("osmose: started as '\(name)'; start it through one of its links: \(programs.map(\.name).joined(separator: ", ")) (osmose --programs lists them)\n".utf8))
exit(64)
