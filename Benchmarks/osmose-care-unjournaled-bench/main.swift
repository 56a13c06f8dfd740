// For scripts/bench only: the care service with successful reads left out of the
// journal, so that the benchmark can state what fail-closed journaling costs.
import CareService
import Glibc

setlocale(LC_CTYPE, "C.UTF-8")
await CareDaemon.run(journalsSuccessfulReads: false)
