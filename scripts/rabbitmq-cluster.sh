#!/usr/bin/env bash
# A three-node RabbitMQ cluster on loopback for routerd's tests: DIR/node1..node3, each a private node of
# scripts/rabbitmq-node.sh (its own ports, data and logs) sharing one epmd and one Erlang cookie, joined to node1.
#
#   scripts/rabbitmq-cluster.sh start DIR   start the three nodes (joined at the first start); prints their urls
#   scripts/rabbitmq-cluster.sh stop DIR    stop every node (their data stays) and the shared epmd
#   scripts/rabbitmq-cluster.sh urls DIR    print the urls, one a line
#
# One node is stopped or started again with scripts/rabbitmq-node.sh stop|start DIR/nodeN.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
command="${1:-}"
dir="${2:-}"
if [ -z "$command" ] || [ -z "$dir" ]; then
    sed -n '2,9p' "$0" >&2
    exit 2
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

urls() {
    for n in 1 2 3; do "$here/rabbitmq-node.sh" url "$dir/node$n"; done
}

case "$command" in
start)
    mkdir -p "$dir"
    if [ ! -f "$dir/cluster.env" ]; then
        printf 'EPMD_PORT=%s\nCOOKIE=%s\n' "$(free_port)" \
            "$(python3 -c 'import secrets; print(secrets.token_hex(16).upper())')" >"$dir/cluster.env"
    fi
    # shellcheck disable=SC1091
    . "$dir/cluster.env"
    export RABBITMQ_SHARED_EPMD_PORT="$EPMD_PORT" RABBITMQ_COOKIE="$COOKIE"
    fresh=0
    [ -f "$dir/node1/node.env" ] || fresh=1
    for n in 1 2 3; do "$here/rabbitmq-node.sh" start "$dir/node$n" >/dev/null; done
    if [ "$fresh" = 1 ]; then
        # shellcheck disable=SC1091
        first="$(. "$dir/node1/node.env" && echo "$RABBITMQ_NODENAME")"
        for n in 2 3; do
            "$here/rabbitmq-node.sh" ctl "$dir/node$n" -q stop_app
            "$here/rabbitmq-node.sh" ctl "$dir/node$n" -q join_cluster "$first"
            "$here/rabbitmq-node.sh" ctl "$dir/node$n" -q start_app
        done
    fi
    urls
    ;;
stop)
    for n in 1 2 3; do
        if [ -f "$dir/node$n/node.env" ]; then "$here/rabbitmq-node.sh" stop "$dir/node$n"; fi
    done
    if [ -f "$dir/cluster.env" ]; then
        # shellcheck disable=SC1091
        . "$dir/cluster.env"
        epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
    fi
    ;;
urls) urls ;;
*) echo "rabbitmq-cluster: unknown command '$command'" >&2; exit 2 ;;
esac
