#include "CRouterTLS.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// The first verification failure of the current handshake on this thread (each connection lives on one thread).
static __thread int failure_code;
static __thread int failure_depth;
static __thread char failure_subject[256];
static __thread char failure_not_after[64];

static int record_failure(int preverify_ok, X509_STORE_CTX *store) {
    if (!preverify_ok && failure_code == 0) {
        failure_code = X509_STORE_CTX_get_error(store);
        failure_depth = X509_STORE_CTX_get_error_depth(store);
        failure_subject[0] = 0;
        failure_not_after[0] = 0;
        X509 *certificate = X509_STORE_CTX_get_current_cert(store);
        if (certificate) {
            X509_NAME_oneline(X509_get_subject_name(certificate), failure_subject, sizeof failure_subject);
            BIO *bio = BIO_new(BIO_s_mem());
            if (bio) {
                if (ASN1_TIME_print(bio, X509_get0_notAfter(certificate)) == 1) {
                    int length = BIO_read(bio, failure_not_after, sizeof failure_not_after - 1);
                    failure_not_after[length > 0 ? length : 0] = 0;
                }
                BIO_free(bio);
            }
        }
    }
    return preverify_ok;
}

void routerd_tls_reset(void) {
    failure_code = 0;
    ERR_clear_error();
}

int routerd_tls_last_failure(char *text, size_t capacity) {
    if (failure_code == 0) return 0;
    const char *reason = X509_verify_cert_error_string(failure_code);
    switch (failure_code) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        snprintf(text, capacity, "%s: the server's certificate (%s) is not for the name it was reached by", reason,
                 failure_subject);
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        snprintf(text, capacity, "%s (certificate '%s', not valid after %s)", reason, failure_subject,
                 failure_not_after);
        break;
    default:
        snprintf(text, capacity, "%s (certificate '%s' at depth %d of the chain)", reason, failure_subject,
                 failure_depth);
    }
    return 1;
}

void routerd_tls_queued_errors(char *text, size_t capacity) {
    size_t used = 0;
    text[0] = 0;
    unsigned long code;
    while ((code = ERR_get_error()) != 0) {
        char line[256];
        ERR_error_string_n(code, line, sizeof line);
        int written = snprintf(text + used, capacity - used, "%s%s", used ? "; " : "", line);
        if (written < 0 || (size_t)written >= capacity - used) break;
        used += (size_t)written;
    }
    ERR_clear_error();
}

int routerd_tls_configure(void *ssl_ctx, const char *server_name, int verify_name, int use_default_roots, char *error,
                          size_t capacity) {
    SSL_CTX *context = (SSL_CTX *)ssl_ctx;
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    if (use_default_roots && SSL_CTX_set_default_verify_paths(context) != 1) {
        snprintf(error, capacity, "cannot load the system's trusted certificates");
        return -1;
    }
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, record_failure);
    if (verify_name && server_name && server_name[0]) {
        X509_VERIFY_PARAM *param = SSL_CTX_get0_param(context);
        unsigned char address[16];
        int is_address = inet_pton(AF_INET, server_name, address) == 1 || inet_pton(AF_INET6, server_name, address) == 1;
        int ok = is_address ? X509_VERIFY_PARAM_set1_ip_asc(param, server_name)
                            : X509_VERIFY_PARAM_set1_host(param, server_name, 0);
        if (ok != 1) {
            snprintf(error, capacity, "cannot check the server's name '%s'", server_name);
            return -1;
        }
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    return 0;
}

int routerd_tls_use_certificate(void *ssl_ctx, const char *cert_file, const char *key_file, char *error,
                                size_t capacity) {
    SSL_CTX *context = (SSL_CTX *)ssl_ctx;
    char queued[400];
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(context, cert_file) != 1) {
        routerd_tls_queued_errors(queued, sizeof queued);
        snprintf(error, capacity, "cannot read the client certificate '%s' (%s)", cert_file, queued);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(context, key_file, SSL_FILETYPE_PEM) != 1) {
        routerd_tls_queued_errors(queued, sizeof queued);
        snprintf(error, capacity, "cannot read the client key '%s' (%s)", key_file, queued);
        return -1;
    }
    if (SSL_CTX_check_private_key(context) != 1) {
        ERR_clear_error();
        snprintf(error, capacity, "the client key '%s' does not fit the certificate '%s'", key_file, cert_file);
        return -1;
    }
    return 0;
}

static int wait_for(int fd, short events, int timeout_ms) {
    struct pollfd entry = {fd, events, 0};
    int ready;
    do {
        ready = poll(&entry, 1, timeout_ms);
    } while (ready < 0 && errno == EINTR);
    return ready;
}

static int connect_to(const char *host, int port, int timeout_ms, char *text, size_t capacity) {
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &found) != 0) {
        snprintf(text, capacity, "cannot resolve host '%s'", host);
        return -1;
    }
    int fd = -1;
    int last_error = 0;
    for (struct addrinfo *address = found; address != NULL; address = address->ai_next) {
        fd = socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC, address->ai_protocol);
        if (fd < 0) {
            last_error = errno;
            continue;
        }
        struct timeval timeout = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        if (connect(fd, address->ai_addr, address->ai_addrlen) == 0) break;
        last_error = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(found);
    if (fd < 0) snprintf(text, capacity, "%s", strerror(last_error));
    return fd;
}

int routerd_tls_probe(const char *host, int port, int postgres, int timeout_ms, const char *ca_file,
                      const char *cert_file, const char *key_file, const char *server_name, int verify_chain,
                      int verify_name, char *text, size_t capacity) {
    text[0] = 0;
    int fd = connect_to(host, port, timeout_ms, text, capacity);
    if (fd < 0) return 3;
    int result = 2;
    SSL_CTX *context = NULL;
    SSL *ssl = NULL;
    if (postgres) {
        // SSLRequest: length 8, code 80877103; the server answers one byte, 'S' (TLS follows) or 'N' (no TLS).
        unsigned char request[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
        char answer = 0;
        if (write(fd, request, sizeof request) != (ssize_t)sizeof request || wait_for(fd, POLLIN, timeout_ms) <= 0
            || read(fd, &answer, 1) != 1) {
            snprintf(text, capacity, "no answer to the TLS request");
            goto done;
        }
        if (answer != 'S') {
            snprintf(text, capacity, "the server does not accept TLS connections");
            goto done;
        }
    }
    context = SSL_CTX_new(TLS_client_method());
    if (!context) {
        snprintf(text, capacity, "out of memory for TLS");
        goto done;
    }
    if (ca_file && ca_file[0] && SSL_CTX_load_verify_locations(context, ca_file, NULL) != 1) {
        char queued[300];
        routerd_tls_queued_errors(queued, sizeof queued);
        snprintf(text, capacity, "cannot read the CA file '%s' (%s)", ca_file, queued);
        goto done;
    }
    if (routerd_tls_configure(context, server_name, verify_name, !(ca_file && ca_file[0]), text, capacity) != 0) goto done;
    if (!verify_chain) SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL);
    if (cert_file && cert_file[0] && key_file && key_file[0]
        && routerd_tls_use_certificate(context, cert_file, key_file, text, capacity) != 0)
        goto done;
    ssl = SSL_new(context);
    if (!ssl || SSL_set_fd(ssl, fd) != 1) {
        snprintf(text, capacity, "out of memory for TLS");
        goto done;
    }
    if (server_name && server_name[0]) {
        unsigned char address[16];
        if (inet_pton(AF_INET, server_name, address) != 1 && inet_pton(AF_INET6, server_name, address) != 1)
            SSL_set_tlsext_host_name(ssl, server_name);
    }
    routerd_tls_reset();
    if (SSL_connect(ssl) == 1) {
        result = 0;
        goto done;
    }
    if (routerd_tls_last_failure(text, capacity)) {
        result = 1;
        goto done;
    }
    char queued[400];
    routerd_tls_queued_errors(queued, sizeof queued);
    snprintf(text, capacity, "TLS handshake failed (%s)", queued[0] ? queued : "the server closed the connection");
done:
    if (ssl) SSL_free(ssl);
    if (context) SSL_CTX_free(context);
    close(fd);
    return result;
}
