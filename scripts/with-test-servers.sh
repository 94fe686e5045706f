#!/usr/bin/env bash
# Runs a command (the test suite) with private servers on loopback, and stops them afterwards whatever happens:
# a RabbitMQ node (ROUTERD_TEST_RABBITMQ_DIR) in a temporary directory, with its own ports and data.
#
#   scripts/with-test-servers.sh swift test --skip-build
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d "${TMPDIR:-/tmp}/routerd-test-servers.XXXXXX")"
cleanup() {
    ./scripts/rabbitmq-node.sh stop "$work/rabbitmq" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "starting a private RabbitMQ node in $work/rabbitmq" >&2
./scripts/rabbitmq-node.sh start "$work/rabbitmq" >/dev/null
export ROUTERD_TEST_RABBITMQ_DIR="$work/rabbitmq"

"$@"
