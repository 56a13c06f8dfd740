import DaemonRuntime
import Glibc
import SubjectRequestService

setlocale(LC_CTYPE, "C.UTF-8")
exit(await DaemonLauncher.run(SubjectRequestDaemon.self))
