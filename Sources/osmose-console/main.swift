import ConsoleService
import DaemonRuntime
import Glibc

setlocale(LC_CTYPE, "C.UTF-8")
exit(await DaemonLauncher.run(ConsoleDaemon.self))
