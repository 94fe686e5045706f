import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

private let token = "tok-3f9a2c7e41d8b6a0-very-secret"
private let password = "pw-b81e55d0c2a74f3e-very-secret"

/// `user:password` in base64, as `Authorization: Basic` carries it.
private func basic(_ user: String, _ password: String) -> String {
    "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
}

/// A self-signed certificate for 127.0.0.1 and its key, made by openssl in `directory`.
private func makeCertificate(in directory: URL) throws -> (certificate: String, key: String) {
    let openssl = try ExternalTools.find(["openssl"], package: "openssl")
    let certificate = directory.appendingPathComponent("cert.pem").path
    let key = directory.appendingPathComponent("key.pem").path
    let (status, output) = try ExternalTools.run(
        openssl,
        [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", certificate,
        ])
    guard status == 0 else { throw TestFailure("openssl req: \(output)") }
    return (certificate, key)
}

/// `curl` on an https URL, trusting only `certificate`: the status and the body (status 0: no HTTP answer).
private func curl(_ url: String, certificate: String, headers: [String] = []) throws -> (Int, String) {
    let curl = try ExternalTools.find(["curl"], package: "curl")
    let (status, output) = try ExternalTools.run(
        curl,
        ["-sS", "--max-time", "10", "--cacert", certificate, "-w", "\n%{http_code}"] + headers.flatMap { ["-H", $0] }
            + [url])
    let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
    guard status == 0, let code = lines.last.flatMap({ Int($0) }) else { return (0, output) }
    return (code, lines.dropLast().joined(separator: "\n"))
}

@Suite("routerd binary: http_stats access control, TLS and security headers", .serialized)
struct DashboardAccessTests {
    private func config(_ options: [String]) -> String {
        """
        inputs:
          udp_in: { type: udp, address: 127.0.0.1, port: 0 }
        outputs:
          stats:
            type: http_stats
            inputs: [udp_in]
            address: 127.0.0.1
            port: 0

        """ + options.map { "    \($0)\n" }.joined()
    }

    private let restricted = ["/", "/dashboard.js", "/dashboard.css", "/stats", "/metrics", "/nothing-here"]

    @Test func bearerToken_isRequiredEverywhereButHealthAndNeverShown() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: config(["auth_token: \"${DASHBOARD_TOKEN:?set DASHBOARD_TOKEN}\""]), directory: directory,
            environment: ["DASHBOARD_TOKEN": token])
        let port = try routerd.listeningPort(stage: "stats")
        for path in restricted {
            for headers in [[:], ["Authorization": "Bearer wrong-\(token)"], ["Authorization": basic("a", token)]] {
                let reply = try httpRequest(port: port, "GET", path, headers: headers)
                #expect(reply.status == 401, "GET \(path) with \(headers)")
                #expect(reply.headers["www-authenticate"] == "Bearer realm=\"routerd\"")
                #expect(reply.headers["content-security-policy"]?.hasPrefix("default-src 'none'") == true)
                #expect(!reply.body.contains("routerd_") && !reply.body.contains("\"stages\""))
            }
            #expect(try httpRequest(port: port, "HEAD", path).status == 401, "HEAD \(path)")
        }
        #expect(try httpRequest(port: port, "GET", "/health").status == 200)
        let authorized = ["Authorization": "Bearer \(token)"]
        for path in restricted.dropLast() {
            #expect(try httpRequest(port: port, "GET", path, headers: authorized).status == 200, "GET \(path)")
        }
        #expect(try httpRequest(port: port, "GET", "/nothing-here", headers: authorized).status == 404)
        let stats = try httpRequest(port: port, "GET", "/stats", headers: authorized)
        #expect(!stats.body.contains(token))
        let metrics = try httpRequest(port: port, "GET", "/metrics", headers: authorized)
        #expect(metrics.body.contains("routerd_http_unauthorized_total{stage=\"stats\",type=\"http_stats\"} 24"))
        #expect(!metrics.body.contains(token))
        let listening = try #require(routerd.logs("listening").first { $0["stage"] as? String == "stats" })
        #expect(listening["auth"] as? String == "bearer")
        #expect(listening["scheme"] as? String == "http")
        #expect(try routerd.terminate() == 0)
        #expect(!routerd.logLines.joined().contains(token))
    }

    @Test func basicCredentials_letABrowserIn_andPrivateHealthNeedsThemToo() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: config(["auth_user: admin", "auth_password: \"${DASHBOARD_PASSWORD}\"", "public_health: false"]),
            directory: directory, environment: ["DASHBOARD_PASSWORD": password])
        let port = try routerd.listeningPort(stage: "stats")
        for path in restricted + ["/health"] {
            for headers in [
                [:], ["Authorization": basic("admin", "x" + password)], ["Authorization": basic("root", password)],
                ["Authorization": "Bearer \(password)"], ["Authorization": "Basic !!!not-base64"],
            ] {
                let reply = try httpRequest(port: port, "GET", path, headers: headers)
                #expect(reply.status == 401, "GET \(path) with \(headers)")
                #expect(reply.headers["www-authenticate"] == "Basic realm=\"routerd\", charset=\"UTF-8\"")
            }
        }
        let authorized = ["Authorization": basic("admin", password)]
        for path in restricted.dropLast() + ["/health"] {
            #expect(try httpRequest(port: port, "GET", path, headers: authorized).status == 200, "GET \(path)")
        }
        #expect(try routerd.terminate() == 0)
        #expect(!routerd.logLines.joined().contains(password))
    }

    @Test func tls_servesHTTPSWithTheConfiguredCertificateAndRefusesPlainHTTP() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (certificate, key) = try makeCertificate(in: directory)
        let routerd = try RouterdProcess(
            config: config([
                "tls_certificate: \(certificate)", "tls_key: \(key)", "auth_token: \"${DASHBOARD_TOKEN}\"",
            ]), directory: directory, environment: ["DASHBOARD_TOKEN": token])
        let port = try routerd.listeningPort(stage: "stats")
        let base = "https://127.0.0.1:\(port)"
        let health = try curl(base + "/health", certificate: certificate)
        #expect(health.0 == 200 && health.1 == "{\"status\":\"ok\"}", "\(health)")
        #expect(try curl(base + "/stats", certificate: certificate).0 == 401)
        let stats = try curl(base + "/stats", certificate: certificate, headers: ["Authorization: Bearer \(token)"])
        #expect(stats.0 == 200)
        #expect(stats.1.contains("\"schema\":1"))
        // Plain HTTP on the TLS port gets no HTTP answer.
        let descriptor = try connectLoopback(port: port, timeout: 5)
        sendAll(descriptor, Array("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        let plain = String(decoding: receiveAll(descriptor), as: UTF8.self)
        close(descriptor)
        #expect(!plain.hasPrefix("HTTP/1.1 200"), "\(plain.prefix(100))")
        let listening = try #require(routerd.logs("listening").first { $0["stage"] as? String == "stats" })
        #expect(listening["scheme"] as? String == "https")
        #expect(try routerd.terminate() == 0)
    }

    @Test func tls_whenTheCertificateFileIsMissing_failsBeforeAnythingRunsAndNamesIt() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("router.yaml").path
        let missing = directory.appendingPathComponent("missing.pem").path
        try config(["tls_certificate: \(missing)", "tls_key: \(missing)"])
            .write(toFile: path, atomically: false, encoding: .utf8)
        let result = try runRouterd(["-c", path])
        #expect(result.status != 0)
        #expect(
            result.stderr.contains(
                "outputs.stats: cannot start: cannot read TLS certificate '\(missing)': No such file or directory"),
            "\(result.stderr)")
    }

    @Test func everyResponse_carriesAStrictContentSecurityPolicy() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(config: config([]), directory: directory)
        let port = try routerd.listeningPort(stage: "stats")
        for path in ["/", "/dashboard.js", "/dashboard.css", "/stats", "/health", "/metrics", "/nothing-here"] {
            let reply = try httpGet(port: port, path)
            #expect(
                reply.headers["content-security-policy"]
                    == "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                    + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'", "\(path)")
            #expect(reply.headers["x-content-type-options"] == "nosniff", "\(path)")
            #expect(reply.headers["x-frame-options"] == "DENY", "\(path)")
        }
        let page = try httpGet(port: port, "/").body
        #expect(!page.contains("<script>") && !page.contains("<style>") && !page.contains(" style="))
        #expect(try routerd.terminate() == 0)
    }
}
