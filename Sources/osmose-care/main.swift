import CareService
import Glibc

setlocale(LC_CTYPE, "C.UTF-8")
await CareDaemon.main()
