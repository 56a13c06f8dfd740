import DaemonRuntime
import Glibc
import RetentionService

setlocale(LC_CTYPE, "C.UTF-8")
exit(await DaemonLauncher.run(RetentionDaemon.self))
