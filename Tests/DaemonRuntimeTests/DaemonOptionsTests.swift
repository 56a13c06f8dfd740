import ArgumentParser
import DaemonRuntime
import Settings
import Testing

@Suite("The daemons' command line")
struct DaemonOptionsTests {
    @Test("--config, else $OSMOSE_CONFIG, else /etc/osmose/osmose.yaml")
    func configurationPath() throws {
        let given = try DaemonOptions.parse(["--config", "/srv/osmose.yaml"])
        #expect(given.configurationPath(environment: ["OSMOSE_CONFIG": "/elsewhere.yaml"]) == "/srv/osmose.yaml")
        let none = try DaemonOptions.parse([])
        #expect(none.configurationPath(environment: ["OSMOSE_CONFIG": "/elsewhere.yaml"]) == "/elsewhere.yaml")
        #expect(none.configurationPath(environment: [:]) == "/etc/osmose/osmose.yaml")
        #expect(none.configurationPath(environment: [:]) == SuiteConfiguration.defaultPath)
    }

    @Test("A wrong command line is refused with status 64")
    func wrongCommandLine() {
        for arguments in [["--config"], ["--verbose"], ["extra"]] {
            #expect(throws: (any Error).self, "\(arguments)") { try DaemonOptions.parse(arguments) }
            do {
                _ = try DaemonOptions.parse(arguments)
            } catch {
                #expect(DaemonOptions.exitCode(for: error).rawValue == ExitStatus.usage.code, "\(arguments)")
            }
        }
    }

    @Test("A daemon's --help names it, says what it does, where its configuration comes from and its exit statuses; --version prints the suite's version")
    func helpAndVersion() {
        let help = ProbeDaemon.helpMessage(columns: 200)
        #expect(help.contains("OVERVIEW: Probes the shared start-up."))
        #expect(help.contains("USAGE: osmose-retentiond [--config <path>]"))
        #expect(help.contains("Configuration: --config, else $OSMOSE_CONFIG, else /etc/osmose/osmose.yaml."))
        #expect(help.contains("EXIT STATUS\n  0   stopped cleanly (SIGTERM), or the work is done\n  1   failed; the message says why\n  3   "))
        #expect(help.contains("  4   the database cannot be reached or refused the work\n  64  "))
        #expect(!help.contains("  5   "))
        #expect(ProbeDaemon.configuration.version == "osmose-retentiond \(SuiteVersion.current)")
    }
}
