import Glibc
import OsmoseControl

// libarchive and Foundation need a UTF-8 locale for non-ASCII names (docs/pitfalls).
setlocale(LC_CTYPE, "C.UTF-8")
do {
    try await Osmosectl.runFromCommandLine()
} catch {
    Osmosectl.exit(withError: error)
}
