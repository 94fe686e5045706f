import Outputs
import Router
import RouterAMQP
import RouterHTTPStats
import RouterPostgres
import Testing

/// The config errors of a one-output config whose `stats` is an http_stats output with `options` (`key: value`).
private func errors(_ options: [String], environment: [String: String] = [:]) throws -> String? {
    let yaml = """
        inputs:
          udp_in: { type: udp, port: 0 }
        outputs:
          stats:
            type: http_stats
            inputs: [udp_in]

        """ + options.map { "    \($0)\n" }.joined()
    let registry = try StageRegistry(StageHarness.builtin)
    do {
        _ = try RouterConfig.parse(
            ConfigSource(path: "router.yaml", text: yaml), environment: environment, registry: registry)
        return nil
    } catch {
        return error.description
    }
}

@Suite("http_stats output: config check of access, TLS and limits")
struct HTTPStatsConfigTests {
    @Test func authUser_withoutAPassword_isRefusedAtTheUserOption() throws {
        let text = try #require(try errors(["auth_user: admin"]))
        #expect(
            text == """
                router.yaml:7:16: error: outputs.stats: 'auth_user' needs 'auth_password' (HTTP basic takes both)
                    auth_user: admin
                               ^
                """, "\(text)")
    }

    @Test func authPassword_withoutAUser_isRefusedAndTheSecretIsNotRepeated() throws {
        let secret = "hunter2-very-secret"
        let text = try #require(try errors(["auth_password: \"${PW}\""], environment: ["PW": secret]))
        #expect(
            text == """
                router.yaml:7:20: error: outputs.stats: 'auth_password' needs 'auth_user' (HTTP basic takes both)
                    auth_password: "${PW}"
                                   ^
                """, "\(text)")
        #expect(!text.contains(secret))
    }

    @Test func authToken_whenTheVariableIsEmpty_saysHowToSetIt() throws {
        let text = try #require(try errors(["auth_token: \"${TOKEN}\""], environment: ["TOKEN": ""]))
        #expect(
            text.hasPrefix(
                "router.yaml:7:17: error: outputs.stats: 'auth_token' is empty: set it, usually from "
                    + "\"${DASHBOARD_TOKEN:?set DASHBOARD_TOKEN}\", or leave it out\n"), "\(text)")
    }

    @Test func tlsCertificate_withoutAKey_isRefused() throws {
        let text = try #require(try errors(["tls_certificate: /etc/routerd/cert.pem"]))
        #expect(
            text.hasPrefix("router.yaml:7:22: error: outputs.stats: 'tls_certificate' needs 'tls_key'\n"), "\(text)")
        let key = try #require(try errors(["tls_key: /etc/routerd/key.pem"]))
        #expect(key.hasPrefix("router.yaml:7:14: error: outputs.stats: 'tls_key' needs 'tls_certificate'\n"), "\(key)")
    }

    @Test func limits_outOfRange_areRefusedWithTheRange() throws {
        let head = try #require(try errors(["max_head_bytes: 100"]))
        #expect(head.contains("error: outputs.stats: option 'max_head_bytes'"), "\(head)")
        let timeout = try #require(try errors(["header_timeout: 2h"]))
        #expect(timeout.contains("error: outputs.stats: option 'header_timeout'"), "\(timeout)")
        let connections = try #require(try errors(["max_connections: 0"]))
        #expect(connections.contains("error: outputs.stats: option 'max_connections'"), "\(connections)")
    }

    @Test func fullAccessConfig_isAccepted() throws {
        #expect(
            try errors(
                [
                    "address: 127.0.0.1", "auth_token: \"${TOKEN}\"", "auth_user: admin", "auth_password: \"${PW}\"",
                    "public_health: false", "tls_certificate: cert.pem", "tls_key: key.pem", "max_head_bytes: 8KiB",
                    "header_timeout: 5s", "max_connections: 64",
                ], environment: ["TOKEN": "t0ken", "PW": "pw"]) == nil)
    }
}
