#!/usr/bin/env bash
# Makes sure the programs the end-to-end tests drive are installed: Prometheus and promtool (Debian's `prometheus`
# package) for `promtool check metrics`, the alerting rules' unit tests and the monitoring kit's test, tmux for the
# `routerd top` terminal test, headless Chromium (`chromium`) for the dashboard test and docs/dashboard.png, and
# RabbitMQ (`rabbitmq-server`) for the amqp tests, which start a private node of their own (never the system's),
# and PostgreSQL's server (`postgresql`) for the postgres output's tests (scripts/postgres-node.sh runs it privately).
# Quick and silent when both are there. As root it installs what is missing with apt-get; otherwise it prints
# the exact command to run and exits 1 (the tests fail, rather than skip, without these tools).
set -euo pipefail

missing=()
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    missing+=(prometheus)
fi
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    missing+=(chromium)
fi
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
# The TLS tests make their certificates with the openssl command.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || missing+=(logrotate)
# `systemd-analyze verify` checks packaging/routerd.service.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi

# The data-diode seed's own programs (Tests/SeedPrograms) run with its real Python libraries.
python_missing=()
python3 -c 'import jwt' 2>/dev/null || python_missing+=(PyJWT)
python3 -c 'import pika' 2>/dev/null || python_missing+=(pika)
python3 -c 'import psycopg2' 2>/dev/null || python_missing+=(psycopg2-binary)
python3 -c 'import pythonjsonlogger' 2>/dev/null || python_missing+=(python-json-logger)
python3 -c 'import dotenv' 2>/dev/null || python_missing+=(python-dotenv)
if [ ${#python_missing[@]} -gt 0 ]; then
    echo "installing ${python_missing[*]} with pip (for the seed programs' tests)" >&2
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${python_missing[@]}" \
        || { echo "routerd's tests need: python3 -m pip install ${python_missing[*]}" >&2; exit 1; }
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} with apt-get (for the dashboard, /metrics, broker and database tests)" >&2
    apt-get update -qq
    # No service is started in a container without an init system; the policy only matters on a full host.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "routerd's tests need ${missing[*]}: run  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
