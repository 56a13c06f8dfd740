import DaemonRuntime
import Glibc
import KeyService

setlocale(LC_CTYPE, "C.UTF-8")
exit(await DaemonLauncher.run(KeyDaemon.self))
