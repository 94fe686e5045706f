import Foundation
import Testing

/// routerd's amqp stages and postgres output against a real RabbitMQ and a real PostgreSQL that speak TLS, with
/// certificates made by the test (scripts/test-certs.sh): what works, and each way a certificate can be wrong, which
/// must stop the connection with the reason, never fall back to plain text.
@Suite("routerd binary: TLS to RabbitMQ and PostgreSQL", .serialized)
struct TLSTests {
    /// What each failing stage logged as its error, and /health's body, once every stage named has failed.
    static func failures(_ routerd: RouterdProcess, message: String, stages: [String]) throws -> (
        [String: String], String
    ) {
        var errors: [String: String] = [:]
        try waitUntil("\(stages) to fail", timeout: 30) { () -> Bool? in
            for line in routerd.logs(message) {
                if let stage = line["stage"] as? String, let error = line["error"] as? String { errors[stage] = error }
            }
            return stages.allSatisfy { errors[$0] != nil } ? true : nil
        }
        let port = try routerd.listeningPort(stage: "stats")
        let health = try waitUntil("/health to name every failing stage") { () -> String? in
            let body = try httpGet(port: port, "/health").body
            return stages.allSatisfy { body.contains($0) } ? body : nil
        }
        return (errors, health)
    }

    /// The TLS options of a stage (four spaces in), trusting `ca` and showing the client certificate when asked.
    static func tlsOptions(_ servers: TLSServers, ca: String = "ca.pem", clientCertificate: Bool = true) -> String {
        var lines = ["    tls_ca_file: \(servers.file(ca))"]
        if clientCertificate {
            lines += [
                "    tls_cert_file: \(servers.file("client.pem"))", "    tls_key_file: \(servers.file("client.key"))",
            ]
        }
        return lines.joined(separator: "\n")
    }

    /// OpenSSL's words for a chain from a CA the client does not trust: which, depends on whether the server sends
    /// its CA's certificate along (PostgreSQL does, from ssl_ca_file) or only its own.
    static func isUntrustedReason(_ text: String) -> Bool {
        text.contains(
            "self-signed certificate in certificate chain (certificate '/CN=routerd test CA' at depth 1 of the chain)")
            || text.contains(
                "unable to get local issuer certificate (certificate '/CN=localhost' at depth 0 of the chain)")
    }

    static func amqpOutput(_ name: String, url: String, tls: String) -> String {
        """
          \(name):
            type: amqp
            inputs: [udp_in]
            url: "\(url)"
            queue: \(RabbitMQNode.queueName("tls"))
            connect_timeout: 2s
            reconnect_backoff_max: 1s
            drain_timeout: 0s
        \(tls)
        """
    }

    @Test func amqps_withTheTestCA_carriesEntriesEncrypted_andEveryBadCertificateIsRefusedWithItsReason() throws {
        let servers = try TLSServers.get()
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let trusted = Self.tlsOptions(servers)
        let untrusted = Self.tlsOptions(servers, ca: "other-ca.pem")
        let noClientCertificate = Self.tlsOptions(servers, clientCertificate: false)
        let queue = RabbitMQNode.queueName("tls-through")
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: {type: udp, address: 127.0.0.1, port: 0}
                  from_broker:
                    type: amqp
                    url: "\(servers.amqpsURL)"
                    queue: \(queue)
                \(trusted)
                outputs:
                  to_broker:
                    type: amqp
                    inputs: [udp_in]
                    url: "\(servers.amqpsURL)"
                    queue: \(queue)
                \(trusted)
                  out: {type: file, inputs: [from_broker], path: out.jsonl}
                """, directory: directory)
        try routerd.waitForLog("consuming")
        try routerd.waitForLog("connected")
        try UDPClient().send(AMQPTests.entries(0..<500), port: try routerd.listeningPort(stage: "udp_in"))
        let output = directory.appendingPathComponent("out.jsonl")
        try waitUntil("500 entries through the broker over TLS", timeout: 30) {
            fileLines(output).count >= 500 ? true : nil
        }
        #expect(Set(fileLines(output).compactMap(sequenceOf)) == Set(0..<500))
        // Both of routerd's connections are TLS ones, as the broker sees them.
        let tlsFlags = try Spawn.run(
            "/bin/bash",
            [
                TestPaths.packageRoot.appendingPathComponent("scripts/rabbitmq-node.sh").path, "ctl",
                servers.rabbitmqDirectory.path, "-q", "list_connections", "ssl",
            ]
        ).output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(tlsFlags.filter { $0 == "true" }.count == 2, "\(tlsFlags)")
        #expect(try routerd.terminate() == 0)

        // Untrusted (the client trusts another CA), no client certificate, and amqps:// to the plain port.
        let plainPort = try #require(servers.amqpURL.split(separator: ":").last?.split(separator: "/").first)
        let broken = try RouterdProcess(
            config: """
                inputs:
                  udp_in: {type: udp, address: 127.0.0.1, port: 0}
                outputs:
                \(Self.amqpOutput("untrusted", url: servers.amqpsURL, tls: untrusted))
                \(Self.amqpOutput("no_client_certificate", url: servers.amqpsURL, tls: noClientCertificate))
                \(Self.amqpOutput("plain_port", url: "amqps://routerd:routerd-test@127.0.0.1:\(plainPort)/", tls: noClientCertificate))
                  stats: {type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0}
                """, directory: directory)
        let (errors, health) = try Self.failures(
            broken, message: "cannot connect; retrying", stages: ["untrusted", "no_client_certificate", "plain_port"])
        let maskedURL = servers.amqpsURL.replacingOccurrences(of: ":routerd-test@", with: ":***@")
        #expect(
            errors["untrusted"].map {
                $0.hasPrefix("cannot connect to \(maskedURL): TLS: the server's certificate failed verification: ")
                    && Self.isUntrustedReason($0)
            } == true, "\(errors)")
        #expect(errors["no_client_certificate"]?.contains("certificate required") == true, "\(errors)")
        #expect(errors["plain_port"]?.contains("TLS handshake failed") == true, "\(errors)")
        #expect(health.contains("degraded") && health.contains("outputs.untrusted"), "\(health)")
        #expect(Self.isUntrustedReason(health), "\(health)")
        #expect(try broken.terminate() == 0)

        // The broker shows a certificate for another name, then an expired one.
        defer { try? servers.rabbitmqServes("server") }
        let localhostURL = servers.amqpsURL.replacingOccurrences(of: "@127.0.0.1:", with: "@localhost:")
        for (certificate, stage, url, reason) in [
            (
                "wrong-name", "wrong_name", localhostURL,
                "TLS: the server's certificate failed verification: hostname mismatch: the server's certificate "
                    + "(/CN=wrong.example) is not for the name it was reached by"
            ),
            (
                "expired", "expired", servers.amqpsURL,
                "TLS: the server's certificate failed verification: certificate has expired (certificate "
                    + "'/CN=localhost', not valid after Jan  2 00:00:00 2020 GMT)"
            ),
        ] {
            try servers.rabbitmqServes(certificate)
            let routerd = try RouterdProcess(
                config: """
                    inputs:
                      udp_in: {type: udp, address: 127.0.0.1, port: 0}
                    outputs:
                    \(Self.amqpOutput(stage, url: url, tls: trusted))
                      stats: {type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0}
                    """, directory: directory)
            let (errors, health) = try Self.failures(routerd, message: "cannot connect; retrying", stages: [stage])
            #expect(errors[stage]?.hasSuffix(reason) == true, "\(errors)")
            #expect(health.contains("outputs.\(stage)") && health.contains(reason), "\(health)")
            #expect(try routerd.terminate() == 0)
        }
    }

    @Test func postgres_withSSLModeVerifyFull_storesOverTLS_andEveryBadCertificateIsRefusedWithItsReason() throws {
        let servers = try TLSServers.get()
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try TestPostgres.freshDatabase(on: servers.postgresURL)
        let trusted = Self.tlsOptions(servers)
        let untrusted = Self.tlsOptions(servers, ca: "other-ca.pem")
        let noClientCertificate = Self.tlsOptions(servers, clientCertificate: false)
        func output(_ name: String, url: String, tls: String) -> String {
            """
              \(name):
                type: postgres
                inputs: [udp_in]
                url: "\(url)"
                connect_timeout: 2s
                reconnect_backoff_max: 1s
                drain_timeout: 0s
            \(tls)
            """
        }
        let plainServer = try TestPostgres.freshDatabase()
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: {type: udp, address: 127.0.0.1, port: 0}
                outputs:
                \(output("stored", url: database + "?sslmode=verify-full", tls: trusted))
                \(output("untrusted", url: database + "?sslmode=verify-full", tls: untrusted))
                \(output("no_client_certificate", url: database + "?sslmode=verify-full", tls: noClientCertificate))
                \(output("plain_server", url: plainServer + "?sslmode=require", tls: ""))
                  stats: {type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0}
                """, directory: directory)
        let (errors, health) = try Self.failures(
            routerd, message: "database unavailable; holding entries and retrying",
            stages: ["untrusted", "no_client_certificate", "plain_server"])
        #expect(
            errors["untrusted"].map {
                $0.hasPrefix("TLS: the server's certificate failed verification: ") && Self.isUntrustedReason($0)
            } == true, "\(errors)")
        #expect(errors["no_client_certificate"]?.contains("requires a valid client certificate") == true, "\(errors)")
        #expect(errors["plain_server"] == "TLS: the server does not accept TLS connections", "\(errors)")
        #expect(health.contains("outputs.untrusted") && Self.isUntrustedReason(health), "\(health)")
        try UDPClient().send(AMQPTests.entries(0..<200), port: try routerd.listeningPort(stage: "udp_in"))
        try waitUntil("200 rows stored over TLS", timeout: 30) {
            (try? TestPostgres.count(database, "SELECT count(*) FROM udp_messages")) == 200 ? true : nil
        }
        // The server sees routerd's connection as a TLS one.
        #expect(
            try TestPostgres.count(
                database,
                "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) "
                    + "WHERE application_name = 'routerd' AND ssl") == 1)
        #expect(
            try TestPostgres.count(
                plainServer, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'udp_messages'") == 0)
        _ = try routerd.terminate()

        defer { try? servers.postgresServes("server") }
        let localhostURL = database.replacingOccurrences(of: "@127.0.0.1:", with: "@localhost:")
        for (certificate, stage, url, reason) in [
            (
                "wrong-name", "wrong_name", localhostURL,
                "TLS: the server's certificate failed verification: hostname mismatch: the server's certificate "
                    + "(/CN=wrong.example) is not for the name it was reached by"
            ),
            (
                "expired", "expired", database,
                "TLS: the server's certificate failed verification: certificate has expired (certificate "
                    + "'/CN=localhost', not valid after Jan  2 00:00:00 2020 GMT)"
            ),
        ] {
            try servers.postgresServes(certificate)
            let routerd = try RouterdProcess(
                config: """
                    inputs:
                      udp_in: {type: udp, address: 127.0.0.1, port: 0}
                    outputs:
                    \(output(stage, url: url + "?sslmode=verify-full", tls: trusted))
                      stats: {type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0}
                    """, directory: directory)
            let (errors, health) = try Self.failures(
                routerd, message: "database unavailable; holding entries and retrying", stages: [stage])
            #expect(errors[stage] == reason, "\(errors)")
            #expect(
                health.contains("outputs.\(stage)") && health.contains("certificate failed verification"), "\(health)")
            #expect(try routerd.terminate() == 0)
        }
    }
}
