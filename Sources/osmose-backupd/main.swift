import BackupService
import Glibc

// libarchive needs a UTF-8 locale to write non-ASCII member names (pitfalls.md).
setlocale(LC_CTYPE, "C.UTF-8")
await BackupDaemon.runFromCommandLine()
