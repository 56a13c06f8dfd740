import DaemonRuntime
import Glibc
import JournalService

setlocale(LC_CTYPE, "C.UTF-8")
exit(await DaemonLauncher.run(JournalDaemon.self))
