#!/usr/bin/env bash
# A private PostgreSQL server for routerd's tests, on 127.0.0.1 only, with its data and unix socket in one folder.
#
#   scripts/postgres-node.sh start DIR [PORT]   initdb into DIR (first time), start, print the test URL
#   scripts/postgres-node.sh stop DIR           stop it (fast shutdown); DIR is kept
#   scripts/postgres-node.sh status DIR         print the URL and exit 0 when it runs, exit 3 when it does not
#   scripts/postgres-node.sh tls-cert DIR NAME  serve NAME.pem / NAME.key of the certificate folder from now on
#   scripts/postgres-node.sh run -- CMD...      start a server in a new temporary folder, run CMD with
#                                               ROUTERD_TEST_POSTGRES_URL set, then stop it and remove the folder
#                                               (always, through a trap), and exit with CMD's status
#
# The URL is postgres://routerd:routerd-test@127.0.0.1:PORT/routerd: a password user (scram-sha-256 over TCP) who
# may create databases, so each test makes its own. Without PORT a free one is picked, and remembered in DIR/port,
# so a restart (stop, start) comes back on the same port. initdb refuses to run as root: as root the server runs
# as the `postgres` system user (which Debian's postgresql package creates), so DIR must be reachable by it (a
# folder under /tmp is; one under /root is not).
#
# TLS mode: with POSTGRES_TLS_CERTS=CERTDIR (made by scripts/test-certs.sh) at the first start, the server also
# takes TLS (ssl = on, CERTDIR/server.pem) and a TLS connection must show a client certificate from the test CA;
# plain connections are still taken, so a client that falls back to plain text would be seen doing it.
set -euo pipefail

usage() {
    echo "usage: $0 start DIR [PORT] | stop DIR | status DIR | tls-cert DIR NAME | run -- CMD [ARGS...]" >&2
    exit 2
}

bindir() {
    local candidate
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$candidate/initdb" ] && [ -x "$candidate/pg_ctl" ]; then
            echo "$candidate"
            return
        fi
    done
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return
    fi
    echo "PostgreSQL's server programs (initdb, pg_ctl) are not installed: run scripts/ensure-test-deps.sh" \
        "(apt-get install postgresql)" >&2
    exit 1
}

# Runs a command as the user who owns the cluster: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

url_for() {
    echo "postgres://routerd:routerd-test@127.0.0.1:$(cat "$1/port")/routerd"
}

is_running() {
    [ -f "$1/data/PG_VERSION" ] && as_owner "$BIN/pg_ctl" status -D "$1/data" >/dev/null 2>&1
}

start() {
    local dir=$1 port=${2:-}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "running as root needs the 'postgres' system user (apt-get install postgresql)" >&2
            exit 1
        fi
        chown postgres: "$dir"
    fi
    if is_running "$dir"; then
        url_for "$dir"
        return
    fi
    if [ -n "$port" ]; then
        echo "$port" >"$dir/port"
    elif [ ! -f "$dir/port" ]; then
        free_port >"$dir/port"
    fi
    port=$(cat "$dir/port")
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        local pwfile="$dir/superuser-password"
        echo "routerd-superuser" >"$pwfile"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$pwfile"
        as_owner "$BIN/initdb" -D "$dir/data" -U postgres --pwfile="$pwfile" --auth-local=trust \
            --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
        rm -f "$pwfile"
        cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
EOF
        if [ -f "$dir/durable" ]; then
            # A server the tests stop and kill: a commit routerd was told of must survive it, as in production.
            printf 'fsync = on\nsynchronous_commit = on\n' >>"$dir/data/postgresql.conf"
        else
            # The shared test server is never killed: skip the disk flushes (much faster, nothing to lose).
            printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >>"$dir/data/postgresql.conf"
        fi
        if [ -n "${POSTGRES_TLS_CERTS:-}" ]; then
            local certs
            certs=$(cd "$POSTGRES_TLS_CERTS" && pwd)
            echo "$certs" >"$dir/tls-certs"
            mkdir -p "$dir/tls"
            install -m 600 "$certs/server.pem" "$dir/tls/server.pem"
            install -m 600 "$certs/server.key" "$dir/tls/server.key"
            cp "$certs/ca.pem" "$dir/tls/ca.pem"
            [ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir/tls"
            cat >>"$dir/data/postgresql.conf" <<EOF
ssl = on
ssl_cert_file = '$dir/tls/server.pem'
ssl_key_file = '$dir/tls/server.key'
ssl_ca_file = '$dir/tls/ca.pem'
EOF
            local hba="$dir/data/pg_hba.conf"
            { echo "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca"; cat "$hba"; } >"$hba.new"
            mv "$hba.new" "$hba"
            [ "$(id -u)" -eq 0 ] && chown postgres: "$hba"
        fi
        local fresh=1
    fi
    as_owner "$BIN/pg_ctl" start -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w -t 60 >/dev/null || {
        tail -n 20 "$dir/server.log" >&2
        exit 1
    }
    if [ -n "${fresh:-}" ]; then
        as_owner "$BIN/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
            -c "CREATE ROLE routerd LOGIN CREATEDB PASSWORD 'routerd-test'" \
            -c "CREATE DATABASE routerd OWNER routerd" >/dev/null
    fi
    url_for "$dir"
}

stop() {
    local dir=$1
    if is_running "$dir"; then
        as_owner "$BIN/pg_ctl" stop -D "$dir/data" -m fast -w -t 60 >/dev/null
    fi
}

# Serves another certificate of the folder; a reload makes new connections use it.
tls_cert() {
    local dir=$1 name=$2 certs
    certs=$(cat "$dir/tls-certs")
    install -m 600 "$certs/$name.pem" "$dir/tls/server.pem"
    install -m 600 "$certs/$name.key" "$dir/tls/server.key"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir/tls/server.pem" "$dir/tls/server.key"
    as_owner "$BIN/pg_ctl" reload -D "$dir/data" >/dev/null
}

status() {
    local dir=$1
    if is_running "$dir"; then
        url_for "$dir"
    else
        echo "not running" >&2
        exit 3
    fi
}

run() {
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || usage
    local dir
    dir=$(mktemp -d "${TMPDIR:-/tmp}/routerd-postgres.XXXXXX")
    chmod 755 "$dir"
    # shellcheck disable=SC2064 # expand $dir now
    trap "'$0' stop '$dir' || true; rm -rf '$dir'" EXIT
    local url
    url=$(start "$dir")
    echo "PostgreSQL for the tests: $url (in $dir)" >&2
    local status=0
    ROUTERD_TEST_POSTGRES_URL="$url" "$@" || status=$?
    return $status
}

[ $# -ge 1 ] || usage
command=$1
shift
BIN=$(bindir)
case "$command" in
start)
    [ $# -ge 1 ] || usage
    start "$@"
    ;;
stop)
    [ $# -eq 1 ] || usage
    stop "$1"
    ;;
status)
    [ $# -eq 1 ] || usage
    status "$1"
    ;;
tls-cert)
    [ $# -eq 2 ] || usage
    tls_cert "$1" "$2"
    ;;
run) run "$@" ;;
*) usage ;;
esac
