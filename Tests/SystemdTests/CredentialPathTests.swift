import Foundation
import Systemd
import Testing

@Suite("Credential files for libraries that read their secrets themselves")
struct CredentialPathTests {
    @Test("A credential's path is given only when the unit passes it")
    func paths() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-creds-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data([1, 2, 3]).write(to: directory.appendingPathComponent("master-key"))
        let credentials = Credentials(environment: ["CREDENTIALS_DIRECTORY": directory.path])
        #expect(credentials.path(of: "master-key") == "\(directory.path)/master-key")
        for name in ["absent", "../master-key", "", "."] { #expect(credentials.path(of: name) == nil, "\(name)") }
        #expect(Credentials(environment: [:]).path(of: "master-key") == nil)
    }
}
