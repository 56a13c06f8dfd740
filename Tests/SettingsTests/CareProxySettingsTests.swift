import Settings
import Testing

@Suite("care.trusted_proxies: the proxies whose X-Forwarded-For is honoured")
struct CareProxySettingsTests {
    func parse(_ text: String) throws -> SuiteConfiguration {
        try SuiteConfiguration.parse(SettingsDocument(file: "osmose.yaml", text: text))
    }

    @Test("Loopback by default; IPv4 and IPv6 addresses accepted; a network, a host name or a port refused with the line")
    func proxies() throws {
        #expect(try parse("care:\n  trust_proxy: true\n").care.trustedProxies == ["127.0.0.1", "::1"])
        #expect(try parse("care:\n  trust_proxy: true\n  trusted_proxies: [10.1.2.3, 'fd00::5']\n").care.trustedProxies == ["10.1.2.3", "fd00::5"])
        #expect(try parse("care:\n  trusted_proxies: []\n").care.trustedProxies.isEmpty)
        for bad in ["10.0.0.0/8", "proxy.hopital.example", "10.1.2.3:443", "999.1.1.1"] {
            let error = #expect(throws: ConfigurationError.self, "\(bad)") { try parse("care:\n  trust_proxy: true\n  trusted_proxies: ['\(bad)']\n") }
            #expect(error.map { "\($0)" }?.contains("osmose.yaml:3") == true, "\(bad): \(error.map { "\($0)" } ?? "")")
        }
    }
}
