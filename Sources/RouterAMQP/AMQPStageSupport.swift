public import RouterCore

/// The options both `amqp` stages take, declared once so that both document and check them the same way.
public enum AMQPStageOptions {
    /// `url`, required.
    public static let url = StageOption<String>.string(
        "url",
        "The broker: `amqp://user:password@host:port/vhost` (`%2f` is `/`; port 5672 and vhost `/` when left out), "
            + "or `amqps://...` for TLS (port 5671 when left out; the server's certificate and name are checked, "
            + "see `tls_ca_file`, and a failed check is an error, never a fall back to plain TCP). Put the "
            + "password in the environment: `amqp://routerd:${AMQP_PASSWORD}@127.0.0.1/`. Logs and errors show it "
            + "masked.")
    /// `heartbeat`.
    public static let heartbeat = StageOption<Duration>.duration(
        "heartbeat", .zero...(.seconds(3600)), default: .seconds(30),
        "AMQP heartbeat interval: a broker that stays silent for two of them counts as lost (and so does routerd "
            + "for the broker). 0 turns heartbeats off.")
    /// `tls_server_name`.
    public static let tlsServerName = StageOption<String?>.optionalString(
        "tls_server_name",
        "With `amqps://`: the name the broker's certificate must be for, when it is not the url's host (a broker "
            + "reached by an address whose certificate names its DNS name). Unset: the url's host (a DNS name, or an "
            + "IP address matched against the certificate's IP entries).")
    /// `tls_verify_server_name`.
    public static let tlsVerifyServerName = StageOption<Bool>.bool(
        "tls_verify_server_name", default: true,
        "With `amqps://`: whether the broker's certificate must be for its name. Turning it off still checks the "
            + "chain against `tls_ca_file`, but then any server holding a certificate from that CA can pose as the "
            + "broker.")

    /// The TLS options, for both declarations.
    public static let tls: [any OptionDeclaring] = TLSClientOptions.all + [tlsServerName, tlsVerifyServerName]

    /// Parses the `url` option, the error naming the option.
    public static func url(from options: StageOptions) throws -> AMQPURL {
        do {
            return try AMQPURL(parsing: try options.value(url))
        } catch let error as AMQPError {
            throw StageError(.invalidConfiguration, "url: \(error.message)")
        }
    }

    /// The TLS settings of checked options.
    public static func tls(from options: StageOptions) throws -> AMQPTLS {
        let files = try TLSClientOptions.files(options)
        return AMQPTLS(
            caFile: files.caFile, certFile: files.certFile, keyFile: files.keyFile,
            serverName: try options.value(tlsServerName), verifyServerName: try options.value(tlsVerifyServerName))
    }

    /// The config problems of the TLS options, each at its option: TLS files for an `amqp://` url, a certificate
    /// without its key, a file that cannot be read.
    public static func problems(_ options: StageOptions) -> [OptionProblemReport] {
        guard let text = try? options.value(url), let parsed = try? AMQPURL(parsing: text) else { return [] }
        var problems = TLSClientOptions.problems(
            options, tlsInUse: parsed.tls, plainReason: "the url is amqp:// (plain TCP): use amqps:// for TLS")
        if !parsed.tls, let name = (try? options.value(tlsServerName)) ?? nil {
            problems.append(
                OptionProblemReport(
                    "'tls_server_name' ('\(name)') is set but the url is amqp:// (plain TCP): use amqps:// for TLS",
                    at: options.locations[tlsServerName.name]))
        }
        return problems
    }
}
