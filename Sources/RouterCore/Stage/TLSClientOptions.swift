#if canImport(Glibc)
    import Glibc
#endif

/// The TLS files of a stage that connects to a server over TLS (`amqp` with `amqps://`, `postgres` with
/// `sslmode=require|verify-ca|verify-full`), declared once so that both stages document and check them alike.
public enum TLSClientOptions {
    /// `tls_ca_file`.
    public static let caFile = StageOption<String?>.optionalString(
        "tls_ca_file",
        "PEM file of the certificate authorities to trust for the server's certificate (TLS only). Unset: the "
            + "system's trusted certificates. A server whose chain does not lead to one of them is refused, never "
            + "talked to in plain text.")
    /// `tls_cert_file`.
    public static let certFile = StageOption<String?>.optionalString(
        "tls_cert_file",
        "PEM file with a client certificate (and its chain) to show the server, for servers that require one "
            + "(TLS only); needs `tls_key_file`.")
    /// `tls_key_file`.
    public static let keyFile = StageOption<String?>.optionalString(
        "tls_key_file", "PEM file with the private key of `tls_cert_file` (unencrypted); required with it.")

    /// The three options, for a declaration's list.
    public static let all: [any OptionDeclaring] = [caFile, certFile, keyFile]

    /// The files, read from checked options.
    public struct Files: Sendable, Equatable {
        /// The CA file, or nil for the system's store.
        public var caFile: String?
        /// The client certificate, or nil for none.
        public var certFile: String?
        /// The client key (set exactly when ``certFile`` is).
        public var keyFile: String?

        /// Makes the files.
        public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
        }

        /// Whether any file is set.
        public var isEmpty: Bool { caFile == nil && certFile == nil && keyFile == nil }
    }

    /// The files of `options`.
    public static func files(_ options: StageOptions) throws -> Files {
        Files(
            caFile: try options.value(caFile), certFile: try options.value(certFile),
            keyFile: try options.value(keyFile))
    }

    /// The config problems of the three options, each at the option it is about: a certificate without its key
    /// (or the other way round), a file that cannot be read, and, when `tlsInUse` is false, any of them set at all
    /// (`plainReason` says why TLS is off and how to turn it on), since a file given for a plain-text connection
    /// means the user believes the connection is encrypted when it is not.
    public static func problems(_ options: StageOptions, tlsInUse: Bool, plainReason: String) -> [OptionProblemReport] {
        var problems: [OptionProblemReport] = []
        func value(_ option: StageOption<String?>) -> String? { (try? options.value(option)) ?? nil }
        func report(_ message: String, at option: StageOption<String?>) {
            problems.append(OptionProblemReport(message, at: options.locations[option.name]))
        }
        let files = [caFile, certFile, keyFile]
        if !tlsInUse {
            for option in files where value(option) != nil {
                report("'\(option.name)' is set but \(plainReason)", at: option)
            }
            return problems
        }
        if value(certFile) != nil && value(keyFile) == nil {
            report("'tls_cert_file' needs 'tls_key_file'", at: certFile)
        }
        if value(keyFile) != nil && value(certFile) == nil {
            report("'tls_key_file' needs 'tls_cert_file'", at: keyFile)
        }
        for option in files {
            guard let path = value(option) else { continue }
            guard let file = fopen(path, "r") else {
                report("cannot read '\(path)': \(String(cString: strerror(errno)))", at: option)
                continue
            }
            fclose(file)
        }
        return problems
    }
}
