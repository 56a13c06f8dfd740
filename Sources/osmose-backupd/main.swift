import BackupService
import DaemonRuntime
import Glibc

// libarchive needs a UTF-8 locale to write non-ASCII member names (pitfalls.md).
setlocale(LC_CTYPE, "C.UTF-8")
BackupDaemon.tuneAllocator()
exit(await DaemonLauncher.run(BackupDaemon.self))
