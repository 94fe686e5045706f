#!/usr/bin/env bash
# Makes sure the system packages routerd builds with are installed: libyaml, rabbitmq-c, OpenSSL and PCRE2 (through
# pkg-config).
# As root it installs what is missing with apt-get; otherwise it prints the exact command to run.
set -euo pipefail

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists yaml-0.1; then
    missing+=(libyaml-dev)
fi
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists librabbitmq; then
    missing+=(librabbitmq-dev)
fi
# OpenSSL: rabbitmq-c's TLS and routerd's certificate checks (CRouterTLS) link it.
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists openssl; then
    missing+=(libssl-dev)
fi
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists libpcre2-8; then
    missing+=(libpcre2-dev)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "routerd needs ${missing[*]}: run  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
