#ifndef CROUTERTLS_H
#define CROUTERTLS_H

#include <stddef.h>

// TLS client helpers over the system's OpenSSL (the one Debian's rabbitmq-c is built with). Swift sees only these
// functions: no OpenSSL type crosses this header, so they never meet swift-nio-ssl's BoringSSL.

/// Sets up an OpenSSL `SSL_CTX` (passed as `void *`) for a client that must verify its server: TLS 1.2 or later,
/// the peer's chain checked (against the CA file loaded into it, or the system's store when `use_default_roots`), and
/// with `verify_name` the certificate checked for `server_name` (a DNS name, or an IP address matched against the
/// certificate's IP entries). Every verification failure on this thread is recorded for
/// ``routerd_tls_last_failure``. Returns 0, or -1 with the reason in `error`.
int routerd_tls_configure(void *ssl_ctx, const char *server_name, int verify_name, int use_default_roots, char *error,
                          size_t capacity);

/// Forgets the failure recorded on this thread (call before a handshake).
void routerd_tls_reset(void);

/// Describes the first certificate verification failure of this thread's last handshake into `text` (`certificate
/// has expired (certificate 'CN=localhost', notAfter Jan  2 00:00:00 2020 GMT)`); returns 1 when there was one, 0
/// otherwise.
int routerd_tls_last_failure(char *text, size_t capacity);

/// The OpenSSL errors queued on this thread, as text (empty when none), and clears them.
void routerd_tls_queued_errors(char *text, size_t capacity);

/// Loads a PEM certificate chain and its private key into `ssl_ctx` and checks that they fit. Returns 0, or -1
/// with the reason in `error`.
int routerd_tls_use_certificate(void *ssl_ctx, const char *cert_file, const char *key_file, char *error,
                                size_t capacity);

/// Connects to host:port and makes a TLS handshake as a verifying client (`postgres`: after PostgreSQL's
/// SSLRequest), only to find out why a real connection's handshake failed. Returns 0 when the handshake and every
/// check pass, 1 for a certificate that failed verification, 2 for anything else (no connection, the server
/// refuses TLS, a handshake error), with the reason in `text`.
int routerd_tls_probe(const char *host, int port, int postgres, int timeout_ms, const char *ca_file,
                      const char *cert_file, const char *key_file, const char *server_name, int verify_chain,
                      int verify_name, char *text, size_t capacity);

#endif
