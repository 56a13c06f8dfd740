import Settings
import Testing

@Suite("care.socket_group and console.socket_group: the reverse proxy's group on a Unix socket")
struct SocketGroupSettingsTests {
    func parse(_ text: String) throws -> SuiteConfiguration {
        try SuiteConfiguration.parse(SettingsDocument(file: "osmose.yaml", text: text))
    }

    @Test("Absent by default; a group name beside a Unix socket is taken; beside a TCP port, or not a group name, refused with the line")
    func socketGroup() throws {
        #expect(try parse("care:\n  listen: unix:/run/osmose-care/care.sock\n").care.socketGroup == nil)
        #expect(try parse("care:\n  listen: unix:/run/osmose-care/care.sock\n  socket_group: osmose-care-web\n").care.socketGroup == "osmose-care-web")
        #expect(try parse("console:\n  listen: unix:/run/osmose-console/console.sock\n  socket_group: www-data\n").console.socketGroup == "www-data")
        let tcp = #expect(throws: ConfigurationError.self) { try parse("care:\n  listen: 127.0.0.1:8080\n  socket_group: osmose-care-web\n") }
        #expect(tcp.map { "\($0)" }?.contains("goes with listen: unix:/path") == true, "\(tcp.map { "\($0)" } ?? "")")
        for bad in ["Osmose", "web proxy", "1web", String(repeating: "w", count: 33)] {
            let error = #expect(throws: ConfigurationError.self, "\(bad)") {
                try parse("console:\n  listen: unix:/run/c.sock\n  socket_group: '\(bad)'\n")
            }
            #expect(error.map { "\($0)" }?.contains("osmose.yaml:3") == true, "\(bad): \(error.map { "\($0)" } ?? "")")
        }
    }
}
