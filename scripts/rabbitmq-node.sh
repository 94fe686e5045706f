#!/usr/bin/env bash
# A private RabbitMQ node for routerd's tests: its own directory (data, logs, config, Erlang cookie), its own
# ports on 127.0.0.1, its own epmd, so that it never touches a system broker and several can run at once.
#
#   scripts/rabbitmq-node.sh start DIR [PORT]   start a node (PORT 0 or none: a free port); prints its amqp:// url
#   scripts/rabbitmq-node.sh stop DIR           stop it (its data stays, so `start DIR` brings back what it held)
#   scripts/rabbitmq-node.sh restart DIR        stop, then start on the same ports with the same data
#   scripts/rabbitmq-node.sh url DIR            print the node's amqp:// url (user routerd, password routerd-test)
#   scripts/rabbitmq-node.sh ctl DIR ARGS...    run rabbitmqctl against it (list_queues name messages, ...)
#   scripts/rabbitmq-node.sh tls-url DIR        print the node's amqps:// url (a node started with RABBITMQ_TLS_CERTS)
#   scripts/rabbitmq-node.sh tls-cert DIR NAME  serve NAME.pem / NAME.key of the certificate folder from now on
#
# Cluster mode (scripts/rabbitmq-cluster.sh): RABBITMQ_SHARED_EPMD_PORT and RABBITMQ_COOKIE at the first start make
# the node use that epmd and that Erlang cookie, so that several nodes find each other and can join.
#
# TLS mode: with RABBITMQ_TLS_CERTS=CERTDIR (made by scripts/test-certs.sh) at the first start, the node also
# listens for amqps:// on another free port of 127.0.0.1, with CERTDIR/server.pem, and requires a client
# certificate from the test CA (CERTDIR/ca.pem).
#
# Needs Debian's rabbitmq-server (scripts/ensure-test-deps.sh installs it).
set -euo pipefail

RABBITMQ_BIN=${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
command="${1:-}"
dir="${2:-}"
if [ -z "$command" ] || [ -z "$dir" ]; then
    sed -n '2,19p' "$0" >&2
    exit 2
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

load_env() {
    if [ ! -f "$dir/node.env" ]; then
        echo "rabbitmq-node: no node in $dir (run: $0 start $dir)" >&2
        exit 1
    fi
    # shellcheck disable=SC1091
    . "$dir/node.env"
    export HOME="$dir" RABBITMQ_NODENAME RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT RABBITMQ_DIST_PORT
    export ERL_EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
    export RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_PID_FILE="$dir/node.pid"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_PLUGINS_EXPAND_DIR="$dir/plugins"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
}

url() {
    echo "amqp://routerd:routerd-test@127.0.0.1:${RABBITMQ_NODE_PORT}/"
}

tls_url() {
    if [ -z "${RABBITMQ_TLS_PORT:-}" ]; then
        echo "rabbitmq-node: the node in $dir has no TLS listener (start it with RABBITMQ_TLS_CERTS)" >&2
        exit 1
    fi
    echo "amqps://routerd:routerd-test@127.0.0.1:${RABBITMQ_TLS_PORT}/"
}

# Serves another certificate of the folder; the node reads certificate files through a cache, cleared here, so
# the next handshake shows the new one.
tls_cert() {
    local name=$1
    cp "$RABBITMQ_TLS_CERTS/$name.pem" "$dir/tls/server.pem"
    cp "$RABBITMQ_TLS_CERTS/$name.key" "$dir/tls/server.key"
    "$RABBITMQ_BIN/rabbitmqctl" -q eval 'ssl:clear_pem_cache().' >/dev/null
}

start() {
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [ ! -f "$dir/node.env" ]; then
        local port="${1:-0}"
        [ "$port" = 0 ] && port="$(free_port)"
        cat >"$dir/node.env" <<EOF
RABBITMQ_NODENAME=routerd-test-$port@localhost
RABBITMQ_NODE_PORT=$port
RABBITMQ_DIST_PORT=$(free_port)
ERL_EPMD_PORT=${RABBITMQ_SHARED_EPMD_PORT:-$(free_port)}
RABBITMQ_SHARED_EPMD=${RABBITMQ_SHARED_EPMD_PORT:+1}
EOF
        if [ -n "${RABBITMQ_COOKIE:-}" ]; then
            # HOME is the node's directory: the Erlang cookie that the nodes of one cluster share.
            printf '%s' "$RABBITMQ_COOKIE" >"$dir/.erlang.cookie"
            chmod 400 "$dir/.erlang.cookie"
        fi
        cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
default_user = routerd
default_pass = routerd-test
loopback_users = none
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = warning
EOF
        if [ -n "${RABBITMQ_TLS_CERTS:-}" ]; then
            local certs tls_port
            certs="$(cd "$RABBITMQ_TLS_CERTS" && pwd)"
            tls_port="$(free_port)"
            mkdir -p "$dir/tls"
            cp "$certs/server.pem" "$dir/tls/server.pem"
            cp "$certs/server.key" "$dir/tls/server.key"
            printf 'RABBITMQ_TLS_PORT=%s\nRABBITMQ_TLS_CERTS=%s\n' "$tls_port" "$certs" >>"$dir/node.env"
            cat >>"$dir/rabbitmq.conf" <<EOF
listeners.ssl.default = 127.0.0.1:$tls_port
ssl_options.cacertfile = $certs/ca.pem
ssl_options.certfile = $dir/tls/server.pem
ssl_options.keyfile = $dir/tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
EOF
        fi
        echo "[]." >"$dir/enabled_plugins"
        echo "[]." >"$dir/advanced.config"
        : >"$dir/rabbitmq-env.conf"
    fi
    load_env
    mkdir -p "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
    # Only stdin, stdout and stderr go to the broker, and those not to our caller: a pipe it inherited would stay
    # open for as long as the broker runs, and a caller reading it to the end would wait forever.
    (
        for fd in /proc/self/fd/*; do
            fd="${fd##*/}"
            [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
        done
        exec nohup "$RABBITMQ_BIN/rabbitmq-server" >>"$dir/server.out" 2>&1 </dev/null
    ) &
    # `wait` returns once the node is up (or fails when the process it watches dies).
    local deadline=$((SECONDS + 90))
    until "$RABBITMQ_BIN/rabbitmqctl" -q wait --timeout 60 "$RABBITMQ_PID_FILE" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            echo "rabbitmq-node: the node in $dir did not start; its output:" >&2
            tail -n 40 "$dir/server.out" >&2
            exit 1
        fi
        sleep 1
    done
    url
}

stop() {
    load_env
    "$RABBITMQ_BIN/rabbitmqctl" -q shutdown >/dev/null 2>&1 || true
    if [ -f "$RABBITMQ_PID_FILE" ]; then
        local pid
        pid="$(cat "$RABBITMQ_PID_FILE")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$RABBITMQ_PID_FILE"
    fi
}

kill_epmd() {
    load_env
    # A cluster's nodes share one epmd (scripts/rabbitmq-cluster.sh stops it after the last node).
    [ -n "${RABBITMQ_SHARED_EPMD:-}" ] && return 0
    epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
}

case "$command" in
start) start "${3:-0}" ;;
stop) stop; kill_epmd ;;
restart) stop; start ;;
url) load_env; url ;;
tls-url) load_env; tls_url ;;
tls-cert) load_env; tls_cert "${3:?usage: $0 tls-cert DIR NAME}" ;;
ctl) load_env; shift 2; exec "$RABBITMQ_BIN/rabbitmqctl" "$@" ;;
*) echo "rabbitmq-node: unknown command '$command'" >&2; exit 2 ;;
esac
