import Foundation
import Settings
import Setup
import Store
import Testing
import TestSupport

@Suite("First-run set-up: the units' order, the peer map, and osmosectl setup --check's findings")
struct SetupTests {
    @Test("The units come migrations first, then the journal's socket and daemon, the daemons, the timers; each timer is left off with its reason")
    func unitOrder() {
        let everything = SuiteUnits.toEnable(.init(backups: true, backupIdentity: true, archiveRecipients: true))
        #expect(everything.leftOff.isEmpty)
        #expect(Array(everything.units.prefix(3)) == ["osmose-migrate.service", "osmose-journald.socket", "osmose-journald.service"])
        let firstTimer = everything.units.firstIndex { $0.hasSuffix(".timer") }!
        #expect(everything.units[firstTimer...].allSatisfy { $0.hasSuffix(".timer") }, "\(everything.units)")
        #expect(Set(everything.units).count == everything.units.count)

        let bare = SuiteUnits.toEnable(.init(backups: false, backupIdentity: true, archiveRecipients: false))
        #expect(!bare.units.contains { $0.contains("backup") || $0.contains("retentiond") }, "\(bare.units)")
        #expect(Set(bare.leftOff.map(\.unit)) == Set(everything.units).subtracting(bare.units))
        #expect(bare.leftOff.first { $0.unit == "osmose-retentiond.timer" }?.reason.contains(SuiteUnits.archiveRecipientsFile) == true)
        let noIdentity = SuiteUnits.toEnable(.init(backups: true, backupIdentity: false, archiveRecipients: true))
        #expect(noIdentity.leftOff.map(\.unit) == ["osmose-backup-verify.timer", "osmose-backup-drill.timer"])
        #expect(noIdentity.units.contains("osmose-backupd-full.timer"))
    }

    @Test("Every unit enabled is shipped in systemd/, and every shipped timer is among them")
    func unitsShipped() throws {
        let shipped = Set(try FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("systemd").path))
        let units = SuiteUnits.toEnable(.init(backups: true, backupIdentity: true, archiveRecipients: true)).units
        #expect(Set(units).subtracting(shipped).isEmpty, "\(Set(units).subtracting(shipped))")
        let timers = shipped.filter { $0.hasSuffix(".timer") }
        #expect(timers.subtracting(units).isEmpty, "timers osmose-setup would never enable: \(timers.subtracting(units))")
    }

    @Test("The peer map names each system user of packaging/sysusers.conf and each role the migrations create, and nothing else")
    func peerMap() throws {
        let sysusers = try String(contentsOf: repositoryRoot.appendingPathComponent("packaging/sysusers.conf"), encoding: .utf8)
        let users = Set(sysusers.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return fields.first == "u" ? String(fields[1]) : nil
        })
        #expect(users == Set(SuiteAccounts.daemons.map(\.user)))

        // The roles the migrations create, written as quoted literals ('osmose_…').
        let migrations = repositoryRoot.appendingPathComponent("Sources/Schema/Migrations")
        var created = Set<String>()
        for file in try FileManager.default.contentsOfDirectory(atPath: migrations.path) where file.hasSuffix(".sql") {
            let text = try String(contentsOf: migrations.appendingPathComponent(file), encoding: .utf8)
            guard text.contains("CREATE ROLE") else { continue }
            for match in text.matches(of: /'(osmose_[a-z_]+)'/) { created.insert(String(match.1)) }
        }
        #expect(created.union([SuiteAccounts.ownerRole]) == Set(SuiteAccounts.roles))

        let lines = SuiteAccounts.peerMapLines.map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(lines.allSatisfy { $0.count == 3 && $0[0] == SuiteAccounts.mapName })
        #expect(Set(lines.filter { $0[1] == "root" }.map { $0[2] }) == Set(SuiteAccounts.roles))
        for (user, role) in SuiteAccounts.daemons { #expect(lines.contains([SuiteAccounts.mapName, user, role])) }
        #expect(Set(lines.filter { $0[1] == "postgres" }.map { $0[2] }) == ["postgres", SuiteAccounts.ownerRole, "osmose_backup"])
    }

    static func configuration(_ yaml: String) throws -> SuiteConfiguration {
        try SuiteConfiguration.parse(SettingsDocument(file: "osmose.yaml", text: yaml))
    }

    @Test("Head directories all on the backup store's file system are missing; one on other storage is ok; an absent one is named")
    func headDirectories() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-setup-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for directory in ["store", "heads", "witness"] {
            try FileManager.default.createDirectory(atPath: "\(scratch)/\(directory)", withIntermediateDirectories: true)
        }
        func check(heads: [String]) throws -> SetupCheck {
            let configuration = try Self.configuration(
                """
                journal:
                  witness_directories: [\(scratch)/witness]
                backup:
                  store: \(scratch)/store
                  recipients: ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
                  head_directories: [\(heads.joined(separator: ", "))]
                """)
            return try #require(SetupCheck.storage(configuration).first { $0.name == "backup.head_directories" })
        }
        let beside = try check(heads: ["\(scratch)/heads"])
        #expect(beside.state == .missing && beside.detail.contains("same file system as the backup store"), "\(beside)")
        let absent = try check(heads: ["\(scratch)/nowhere"])
        #expect(absent.state == .missing && absent.detail.contains("\(scratch)/nowhere does not exist"), "\(absent)")

        // /dev/shm is a tmpfs of its own wherever this suite runs (Debian, containers).
        var here = stat(), shm = stat()
        try #require(stat(scratch, &here) == 0 && stat("/dev/shm", &shm) == 0)
        try #require(here.st_dev != shm.st_dev, "/dev/shm shares the temporary directory's file system here")
        let other = "/dev/shm/osmose-setup-heads-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: other) }
        let elsewhere = try check(heads: ["\(scratch)/heads", other])
        #expect(elsewhere.state == .ok && !elsewhere.detail.contains("add one on other storage"), "\(elsewhere)")
    }

    @Test("The owner role: a superuser or one with CREATEROLE is missing, a plain one is ok; WAL archiving off is missing")
    func database() async throws {
        try await TestDatabase.with("setup_checks") { database in
            try await Connection.withConnection(database.connectionString, logger: testLogger) { connection in
                let superuser = try await SetupCheck.ownerRole(on: connection)
                #expect(superuser.state == .missing && superuser.detail.contains("is a superuser"), "\(superuser)")
                let suffix = UUID().uuidString.prefix(8).lowercased()
                let creator = "osmose_setup_creator_\(suffix)", plain = "osmose_setup_plain_\(suffix)"
                try await connection.execute("CREATE ROLE \(creator) NOLOGIN CREATEROLE; CREATE ROLE \(plain) NOLOGIN")
                do {
                    try await connection.execute("SET ROLE \(creator)")
                    let creates = try await SetupCheck.ownerRole(on: connection)
                    #expect(creates.state == .missing && creates.detail.contains("CREATEROLE"), "\(creates)")
                    try await connection.execute("RESET ROLE; SET ROLE \(plain)")
                    #expect(try await SetupCheck.ownerRole(on: connection).state == .ok)
                    try await connection.execute("RESET ROLE")
                } catch {
                    try? await connection.execute("RESET ROLE; DROP ROLE \(creator); DROP ROLE \(plain)")
                    throw error
                }
                try await connection.execute("DROP ROLE \(creator); DROP ROLE \(plain)")

                // The test cluster (scripts/pg) does not archive its WAL.
                let archiving = try await SetupCheck.walArchiving(on: connection)
                #expect(archiving.state == .missing && archiving.detail.contains("archive_mode is off"), "\(archiving)")
            }
        }
    }
}

@Suite("osmosectl setup --check: the sockets' group")
struct SetupSocketGroupTests {
    @Test("A Unix socket without socket_group is missing (0700: no proxy can connect); with one it is ok; a TCP listener is not checked")
    func socketGroup() throws {
        func checks(_ yaml: String) throws -> [SetupCheck] {
            SetupCheck.configuration(try SetupTests.configuration(yaml), credentials: "/nonexistent").filter { $0.name.hasSuffix("socket_group") }
        }
        let bare = try checks("care:\n  listen: unix:/run/osmose-care/care.sock\nconsole:\n  listen: unix:/run/osmose-console/console.sock\n")
        #expect(bare.map(\.state) == [.missing, .missing])
        #expect(bare.first?.detail.contains("/run/osmose-care/care.sock is 0700") == true, "\(bare)")
        let grouped = try checks("care:\n  listen: unix:/run/c.sock\n  socket_group: osmose-care-web\n")
        #expect(grouped == [SetupCheck(name: "care.socket_group", state: .ok, detail: "osmose-care-web: the socket is 0660 in it")])
        #expect(try checks("care:\n  listen: 127.0.0.1:8080\n").isEmpty)
    }
}
