// For scripts/bench only: the care service with successful reads left out of the
// journal, so that the benchmark can state what fail-closed journaling costs.
import ArgumentParser
import CareService
import DaemonRuntime
import Glibc

/// `osmose-care` with the benchmark's switch set.
struct UnjournaledCareDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration.daemon(
        .care, abstract: "osmose-care without journaling successful reads, to measure what journaling costs. Benchmark only; never installed.",
        exitStatuses: [.success, .failure, .invalidConfiguration, .databaseUnavailable, .keyUnavailable])

    @OptionGroup var options: DaemonOptions

    func run() async throws { try await CareDaemon.serve(options: options, journalsSuccessfulReads: false) }
}

setlocale(LC_CTYPE, "C.UTF-8")
exit(await DaemonLauncher.run(UnjournaledCareDaemon.self))
