import CareService
import DaemonRuntime
import Glibc

setlocale(LC_CTYPE, "C.UTF-8")
exit(await DaemonLauncher.run(CareDaemon.self))
