import Glibc
import JournalService

setlocale(LC_CTYPE, "C.UTF-8")
await JournalDaemon.main()
