import Outputs
import Router
import RouterAMQP
import RouterHTTPStats
import RouterPostgres
import Testing

/// The config errors of a one-output config whose `store` is a postgres output with `options` (`key: value`).
private func errors(_ options: [String], environment: [String: String] = [:]) throws -> String? {
    let yaml = """
        inputs:
          udp_in: { type: udp, port: 0 }
        outputs:
          store:
            type: postgres
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

@Suite("postgres output: config check")
struct PostgresConfigTests {
    @Test func url_whenMalformed_saysWhatIsWrongWithoutRepeatingThePassword() throws {
        let secret = "s3cret-pass"
        let cases: [(String, String)] = [
            ("mysql://u:${PW}@db/logs", "must start with postgres:// or postgresql://, not mysql://"),
            ("postgres://u:${PW}@db", "names no database: add /database after the host"),
            ("postgres://u:${PW}@db:99999/logs", "has a port that is not a number between 1 and 65535"),
            (
                "postgres://u:${PW}@db/logs?sslmode=prefer",
                "has sslmode=prefer, which falls back to plain text when the server refuses TLS; use "
                    + "sslmode=require, verify-ca or verify-full (or disable)"
            ),
            (
                "postgres://u:${PW}@db/logs?sslmode=verify",
                "has sslmode='verify'; expected disable, require, verify-ca or verify-full"
            ),
            (
                "postgres://u:${PW}@db/logs?sslrootcert=/ca.pem",
                "has the parameter 'sslrootcert', which is not supported (only sslmode; the TLS files are the "
                    + "options tls_ca_file, tls_cert_file and tls_key_file)"
            ),
            ("db.example:5432", "must look like postgres://user:password@host:5432/database"),
        ]
        for (url, problem) in cases {
            let text = try #require(try errors(["url: \"\(url)\""], environment: ["PW": secret]), "\(url)")
            #expect(text.contains("error: outputs.store: option 'url' \(problem)"), "\(url): \(text)")
            #expect(!text.contains(secret))
        }
    }

    @Test func url_whenWellFormed_isAccepted() throws {
        for url in [
            "postgres://routerd:${PW}@127.0.0.1:5432/logs", "postgresql://routerd@[::1]/logs?sslmode=disable",
            "postgres://user%40corp:p%2Fss@db/logs", "postgres://u@db/logs?sslmode=require",
            "postgres://u@db/logs?sslmode=verify-ca", "postgres://u@db/logs?sslmode=verify-full",
        ] {
            #expect(try errors(["url: \"\(url)\""], environment: ["PW": "x"]) == nil, "\(url)")
        }
        // Generated passwords often hold '/' or '?', and `${PW}` puts them in unescaped.
        let slashy = "ab/c?d=e#f"
        #expect(
            try errors(["url: \"postgres://routerd:${PW}@db:5432/logs\""], environment: ["PW": slashy]) == nil)
        let text = try #require(
            try errors(["url: \"postgres://routerd:${PW}@db:99999/logs\""], environment: ["PW": slashy]))
        #expect(text.contains("has a port that is not a number between 1 and 65535"), "\(text)")
        #expect(!text.contains("c?d") && !text.contains("ab/c"), "\(text)")
    }

    @Test func columns_whenASourceIsNeitherAFieldNorASpecialName_listsWhatIsAllowed() throws {
        let text = try errors(["url: postgres://u@db/logs", "columns: { body: $message, sender: \"client..id\" }"])
        #expect(
            text == """
                router.yaml:4:3: error: outputs.store: 'columns': column 'body' reads '$message', which is neither a \
                field path (name or a.b.c) nor $entry nor $received_at
                  store:
                  ^
                """)
    }

    @Test func table_whenItHasTooManyParts_saysWhatATableNameIs() throws {
        let text = try errors(["url: postgres://u@db/logs", "table: a.b.c"])
        #expect(text?.contains("'table' must be a table name or schema.table, got 'a.b.c'") == true)
    }

    @Test func tlsFiles_whenTheURLIsPlain_areRefusedAtTheirLine() throws {
        let text = try errors(["url: postgres://u@db/logs", "tls_ca_file: /etc/ssl/certs/ca-certificates.crt"])
        #expect(
            text == """
                router.yaml:8:18: error: outputs.store: 'tls_ca_file' is set but the url has no sslmode (plain \
                TCP): add ?sslmode=verify-full (or require, verify-ca)
                    tls_ca_file: /etc/ssl/certs/ca-certificates.crt
                                 ^
                """)
    }

    @Test func tlsFiles_whenACertificateHasNoKeyOrAFileIsMissing_sayWhich() throws {
        let text = try #require(
            try errors([
                "url: postgres://u@db/logs?sslmode=verify-full", "tls_ca_file: /nonexistent/ca.pem",
                "tls_cert_file: /etc/hostname",
            ]))
        #expect(
            text.contains(
                "router.yaml:8:18: error: outputs.store: cannot read '/nonexistent/ca.pem': No such file or directory"),
            "\(text)")
        #expect(
            text.contains("router.yaml:9:20: error: outputs.store: 'tls_cert_file' needs 'tls_key_file'"), "\(text)")
    }

    @Test func schema_isSeedOrExtended() throws {
        #expect(try errors(["url: postgres://u@db/logs", "schema: extended"]) == nil)
        #expect(try errors(["url: postgres://u@db/logs", "schema: seed"]) == nil)
        let text = try #require(try errors(["url: postgres://u@db/logs", "schema: routerd"]))
        #expect(text.contains("schema") && text.contains("seed") && text.contains("extended"), "\(text)")
    }
}
