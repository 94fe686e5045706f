import NIOSSL
import RouterCore

#if canImport(Glibc)
    import Glibc
#endif

/// HTTPS for the dashboard: the certificate chain and key of the config, read once at start.
enum HTTPTLS {
    /// The server TLS configuration (TLS 1.2 or later) for `certificate` and `key`, or nil when neither is set
    /// (``HTTPAccess/problems(_:)`` has already refused one without the other). A file that cannot be read or
    /// parsed, or a key that is not the certificate's, throws with the path and the reason.
    static func configuration(certificate: String?, key: String?) throws(StageError) -> TLSConfiguration? {
        guard let certificate, let key else { return nil }
        try readable(certificate, what: "TLS certificate")
        try readable(key, what: "TLS key")
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw StageError("cannot read TLS certificate '\(certificate)': not a PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw StageError("TLS certificate '\(certificate)' holds no certificate") }
        let privateKey: NIOSSLPrivateKey
        do {
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw StageError("cannot read TLS key '\(key)': not a PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        do {
            // Builds the context once here, so that a key that does not match the certificate stops routerd now.
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw StageError("TLS key '\(key)' does not fit certificate '\(certificate)' (\(error))")
        }
        return configuration
    }

    private static func readable(_ path: String, what: String) throws(StageError) {
        guard let file = fopen(path, "r") else {
            throw StageError("cannot read \(what) '\(path)': \(String(cString: strerror(errno)))")
        }
        fclose(file)
    }
}
