public import RouterCore

/// The options both `amqp` stages take, declared once so that both document and check them the same way.
public enum AMQPStageOptions {
    /// `url`: one broker, or a list of them (the same as `urls`).
    public static let url = StageOption<OptionTree?>.tree(
        "url", shape: "amqp:// url, or a list of them",
        "The broker: `amqp://user:password@host:port/vhost` (`%2f` is `/`; port 5672 and vhost `/` when left out), "
            + "or `amqps://...` for TLS (port 5671 when left out; the server's certificate and name are checked, "
            + "see `tls_ca_file`, and a failed check is an error, never a fall back to plain TCP). Put the "
            + "password in the environment: `amqp://routerd:${AMQP_PASSWORD}@127.0.0.1/`. Logs and errors show it "
            + "masked. A list (`[amqp://a/, amqp://b/]`, or `urls:`) names several brokers: routerd connects to "
            + "one of them, starting at a random position so that many routers spread over the list, and goes to "
            + "the next one when a connect fails or the connection is lost. Set `url` or `urls`, not both.")
    /// `urls`: several brokers (the same as a list in `url`).
    public static let urls = StageOption<OptionTree?>.tree(
        "urls", shape: "list of amqp:// urls",
        "Several brokers, tried in turn from a random start: the same as a list in `url` (see there). Every item "
            + "is checked before start; all must be `amqp://` or all `amqps://`, so that a failover never drops to "
            + "plain TCP.")
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

    /// The brokers of checked options (`url` or `urls`), in the order written.
    public static func urls(from options: StageOptions) throws -> [AMQPURL] {
        let (items, problems) = parsedURLs(options)
        if let first = problems.first { throw StageError(.invalidConfiguration, first.message) }
        return items
    }

    /// The brokers that parse, and a problem for each item that does not (at the item), for a missing or doubled
    /// option, and for a list that mixes `amqp://` and `amqps://`.
    static func parsedURLs(_ options: StageOptions) -> ([AMQPURL], [OptionProblemReport]) {
        let given = [url, urls].compactMap { option -> (String, OptionTree)? in
            guard let tree = (try? options.value(option)) ?? nil else { return nil }
            return (option.name, tree)
        }
        guard let (name, tree) = given.first else {
            return ([], [OptionProblemReport("set 'url' (or 'urls', a list): the broker to connect to", at: nil)])
        }
        if given.count > 1 {
            return (
                [],
                [
                    OptionProblemReport(
                        "set 'url' or 'urls', not both (a list in 'url' is the same as 'urls')",
                        at: options.locations[urls.name])
                ]
            )
        }
        let nodes: [OptionTree]
        let listed: Bool
        switch tree.kind {
        case .sequence(let items):
            nodes = items
            listed = true
        default:
            nodes = [tree]
            listed = false
        }
        if nodes.isEmpty {
            return (
                [], [OptionProblemReport("'\(name)' is an empty list: name at least one broker", at: tree.location)]
            )
        }
        var parsed: [AMQPURL] = []
        var problems: [OptionProblemReport] = []
        for (index, node) in nodes.enumerated() {
            let label = listed ? "\(name) item \(index + 1) of \(nodes.count)" : name
            guard let text = node.scalar else {
                problems.append(
                    OptionProblemReport("\(label): must be an amqp:// url, got \(node.shape)", at: node.location))
                continue
            }
            do {
                parsed.append(try AMQPURL(parsing: text))
            } catch {
                problems.append(OptionProblemReport("\(label): \(error.message)", at: node.location))
            }
        }
        if problems.isEmpty, Set(parsed.map(\.tls)).count > 1 {
            problems.append(
                OptionProblemReport(
                    "'\(name)' mixes amqp:// and amqps:// brokers: a failover must never drop to plain TCP; use "
                        + "amqps:// for all of them", at: tree.location))
        }
        return (parsed, problems)
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
        let (brokers, urlProblems) = parsedURLs(options)
        guard urlProblems.isEmpty, let parsed = brokers.first else { return urlProblems }
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
