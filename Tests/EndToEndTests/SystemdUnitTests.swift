import Foundation
import Testing

/// Where `systemd-analyze` is, if it is installed (`apt-get install systemd`; `make test` installs it).
private let systemdAnalyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first {
    FileManager.default.isExecutableFile(atPath: $0)
}

/// packaging/routerd.service, checked by systemd's own parser.
@Suite("packaging: systemd unit")
struct SystemdUnitTests {
    static let shipped = TestPaths.packageRoot.appendingPathComponent("packaging/routerd.service")

    @Test(
        .enabled(
            if: systemdAnalyze != nil,
            "systemd-analyze is not installed, so the unit cannot be verified (apt-get install systemd)"))
    func unit_passesSystemdAnalyzeVerify_withoutAWarning() throws {
        let analyze = try #require(systemdAnalyze)
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = try String(contentsOf: Self.shipped, encoding: .utf8)
        // verify checks that the commands exist: point them at the built binary.
        let unit = text.replacingOccurrences(of: "/usr/local/bin/routerd", with: TestPaths.binary)
        #expect(unit != text)
        let url = directory.appendingPathComponent("routerd.service")
        try unit.write(to: url, atomically: true, encoding: .utf8)
        let result = try Spawn.run(analyze, ["verify", url.path])
        #expect(result.status == 0, "\(result.output)")
        // An unknown or misspelt setting is only a warning to systemd: the test wants none.
        #expect(result.output.isEmpty, "\(result.output)")
    }

    @Test func unit_isNotifyReloadsWithSIGHUPAndRunsHardenedAsItsOwnUser() throws {
        let settings = try String(contentsOf: Self.shipped, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") && $0.contains("=") }.map(String.init)
        for expected in [
            "Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=routerd", "ProtectSystem=strict",
            "ReadWritePaths=/var/log/routerd /var/lib/routerd", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
        ] {
            #expect(settings.contains(expected), "\(expected)")
        }
        // Capabilities only as the documented opt-in for ports below 1024.
        #expect(!settings.contains { $0.hasPrefix("AmbientCapabilities=") })
    }
}
