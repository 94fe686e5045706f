import CRouterTLS
import NIOSSL
import RouterCore

/// TLS to the database: the context the `sslmode` and the files ask for, made once at start, and the words for a
/// handshake that failed.
enum PostgresTLS {
    /// The client context for `mode` (nil for `disable`). A file that cannot be read, or a key that does not fit its
    /// certificate, throws with the path and the reason, so that routerd stops before anything runs.
    static func context(mode: PostgresSSLMode, files: TLSClientOptions.Files) throws(StageError) -> NIOSSLContext? {
        guard mode != .disable else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        switch mode {
        case .disable: return nil
        // libpq's `require` checks the chain when it has a root certificate, and only then.
        case .require: configuration.certificateVerification = files.caFile == nil ? .none : .noHostnameVerification
        case .verifyCA: configuration.certificateVerification = .noHostnameVerification
        case .verifyFull: configuration.certificateVerification = .fullVerification
        }
        if let caFile = files.caFile {
            do {
                let roots = try NIOSSLCertificate.fromPEMFile(caFile)
                guard !roots.isEmpty else { throw StageError("tls_ca_file '\(caFile)' holds no certificate") }
                configuration.trustRoots = .certificates(roots)
            } catch let error as StageError {
                throw error
            } catch {
                throw StageError("cannot read tls_ca_file '\(caFile)': not a PEM certificate (\(error))")
            }
        }
        if let certFile = files.certFile, let keyFile = files.keyFile {
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
            } catch {
                throw StageError("cannot read tls_cert_file '\(certFile)': not a PEM certificate (\(error))")
            }
            do {
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            } catch {
                throw StageError("cannot read tls_key_file '\(keyFile)': not a PEM private key (\(error))")
            }
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw StageError("cannot set up TLS with these files (\(error)); does tls_key_file fit tls_cert_file?")
        }
    }

    /// Why a TLS connection to `url` failed, in words a person acts on (`the server's certificate failed
    /// verification: certificate has expired (...)`, `the server does not accept TLS connections`), found by
    /// making the same handshake again with the system's OpenSSL, which says which check failed; nil when that
    /// handshake passes (the failure was elsewhere). Blocks the calling thread (the output's own) for at most
    /// `timeout`.
    static func diagnose(url: PostgresURL, files: TLSClientOptions.Files, timeout: Duration) -> String? {
        var text = [CChar](repeating: 0, count: 768)
        let (seconds, attoseconds) = timeout.components
        let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        let verifyChain = url.sslMode != .require || files.caFile != nil
        let result = routerd_tls_probe(
            url.host, Int32(url.port), 1, milliseconds, files.caFile, files.certFile, files.keyFile, url.host,
            verifyChain ? 1 : 0, url.sslMode == .verifyFull ? 1 : 0, &text, text.count)
        let message = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch result {
        case 0, 3: return nil
        case 1: return "TLS: the server's certificate failed verification: \(message)"
        default: return "TLS: \(message)"
        }
    }
}
