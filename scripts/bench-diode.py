#!/usr/bin/env python3
"""routerd diode benchmark: the two example tiers, RabbitMQ and PostgreSQL, end to end, at several rates.

It starts a private RabbitMQ node and a private PostgreSQL (scripts/rabbitmq-node.sh, scripts/postgres-node.sh) in
temporary directories on loopback. For each rate it starts fresh examples/diode-ingest.yaml and
examples/diode-store.yaml routers (their own queue and database), sends BENCH_TOTAL signed seed messages
(200,000 by default) with `routerd send --format diode --rate R`, and waits until PostgreSQL holds them all (or
nothing new arrives for 30 s). It reports how long the last row took, the CPU time and peak RSS of each router,
the CPU time of the broker and the database, and checks with SQL that every message sent (its numbered text) is stored exactly once.
`--batch-per-message 1,100` runs each rate once for each value of the ingest tier's `batch_per_message`
(AMQP_BATCH_PER_MESSAGE): entries per AMQP message, which the store tier's `amqp` input splits again.

Everything shares the machine: on 2 cores the broker (persistent messages with publisher confirms) and the
database are the larger part of the CPU. It builds nothing: `make bench-diode` builds the release binary first.
Python 3 standard library only; needs rabbitmq-server and postgresql (scripts/ensure-test-deps.sh).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RATES = [5_000, 10_000, 20_000]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SECRET = "bench-secret-for-routerd-diode-0123456789abcdef"
# How long the row count may stand still, once sending ended, before the run is reported as lossy.
STALL_SECONDS = 30


def parse_rates(text):
    rates = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        if not part:
            continue
        multiplier = 1000 if part.endswith("k") else 1
        rates.append(int(float(part.rstrip("k")) * multiplier))
    if any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError("rates are messages per second, more than 0")
    return rates


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_cpu_seconds(pid):
    """User + system CPU seconds of one process, or 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_tree_cpu_seconds(root):
    """CPU seconds of a process and its live children (PostgreSQL's postmaster and its backends)."""
    total = process_cpu_seconds(root)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def read_stats(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as answer:
            return json.loads(answer.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def counter(stats, stage_name, name):
    for stage in (stats or {}).get("stages", []):
        if stage.get("name") == stage_name:
            value = stage.get("counters", {}).get(name)
            if isinstance(value, dict):  # labelled: {"reason": {...}}
                return sum(sum(inner.values()) for inner in value.values())
            return value
    return None


class Servers:
    """The private RabbitMQ node and PostgreSQL server the runs share."""

    def __init__(self, keep):
        self.directory = tempfile.mkdtemp(prefix="routerd-bench-diode-")
        os.chmod(self.directory, 0o755)  # as root, PostgreSQL runs as its own user and must reach its directory
        self.keep = keep
        self.rabbitmq_dir = os.path.join(self.directory, "rabbitmq")
        self.postgres_dir = os.path.join(self.directory, "postgres")
        print(f"starting RabbitMQ and PostgreSQL in {self.directory}", file=sys.stderr)
        self.amqp_url = self.script("rabbitmq-node.sh", "start", self.rabbitmq_dir)
        try:
            self.postgres_url = self.script("postgres-node.sh", "start", self.postgres_dir)
        except BaseException:
            self.stop()  # do not leave the RabbitMQ node running
            raise

    @staticmethod
    def script(name, *arguments):
        finished = subprocess.run(
            [os.path.join(ROOT, "scripts", name), *arguments], capture_output=True, text=True, timeout=300)
        if finished.returncode != 0:
            raise RuntimeError(f"scripts/{name} {' '.join(arguments)} failed:\n{finished.stderr}{finished.stdout}")
        return finished.stdout.strip().splitlines()[-1] if finished.stdout.strip() else ""

    def broker_pid(self):
        with open(os.path.join(self.rabbitmq_dir, "node.pid")) as handle:
            return int(handle.read().split()[0])

    def database_pid(self):
        with open(os.path.join(self.postgres_dir, "data", "postmaster.pid")) as handle:
            return int(handle.readline())

    def servers_cpu_seconds(self):
        return process_cpu_seconds(self.broker_pid()), process_tree_cpu_seconds(self.database_pid())

    def psql(self, url, sql):
        finished = subprocess.run(
            ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
            capture_output=True, text=True, timeout=60)
        if finished.returncode != 0:
            raise RuntimeError(f"psql failed: {finished.stderr}")
        return finished.stdout.strip()

    def fresh_database(self, name):
        self.psql(self.postgres_url, f"CREATE DATABASE {name}")
        return self.postgres_url.rsplit("/", 1)[0] + "/" + name

    def stop(self):
        for name, directory in (("postgres-node.sh", self.postgres_dir), ("rabbitmq-node.sh", self.rabbitmq_dir)):
            try:
                self.script(name, "stop", directory)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                print(f"stopping: {error}", file=sys.stderr)
        if not self.keep:
            shutil.rmtree(self.directory, ignore_errors=True)


class Router:
    def __init__(self, binary, config, directory, env):
        self.log_path = os.path.join(directory, os.path.basename(config) + ".log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [binary, "-c", config], cwd=directory, env=dict(os.environ, **env),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)

    def wait_for(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as handle:
                if text.encode() in handle.read():
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        with open(self.log_path, "rb") as handle:
            raise RuntimeError(f"routerd did not log {text!r}:\n" + handle.read().decode(errors="replace"))

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


def bench_rate(args, servers, rate, index, batch_per_message=1):
    directory = tempfile.mkdtemp(prefix="routerd-bench-diode-run-")
    name = f"bench_{index}_{rate}_{batch_per_message}"
    database_url = servers.fresh_database(name)
    # The store creates the seed's table itself (client_id INT): `routerd send` sends the seed client's messages.
    udp_port = free_port(socket.SOCK_DGRAM)
    ingest_dashboard, store_dashboard = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    env = {
        "SECRET_KEY": SECRET, "AMQP_URL": servers.amqp_url, "AMQP_QUEUE": name, "DATABASE_URL": database_url,
        "SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(udp_port), "RCVBUF_SIZE": str(32 << 20),
        "INGEST_DASHBOARD_PORT": str(ingest_dashboard), "STORE_DASHBOARD_PORT": str(store_dashboard),
        "LOG_DIR": os.path.join(directory, "logs"), "AMQP_BATCH_PER_MESSAGE": str(batch_per_message),
    }
    ingest = Router(args.binary, os.path.join(ROOT, "examples/diode-ingest.yaml"), directory, env)
    store = Router(args.binary, os.path.join(ROOT, "examples/diode-store.yaml"), directory, env)
    try:
        ingest.wait_for('"connected"')
        store.wait_for('"consuming"')
        store.wait_for('"connected"')
        broker_before, database_before = servers.servers_cpu_seconds()
        started = time.monotonic()
        sender = subprocess.Popen(
            [args.binary, "send", "--format", "diode", "--secret", SECRET, "--port", str(udp_port),
             "--count", str(args.total), "--rate", str(rate), "--client-id", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        count, last_change, sent_at = 0, time.monotonic(), None
        while True:
            time.sleep(0.25)
            if sent_at is None and sender.poll() is not None:
                sent_at = time.monotonic()
                if sender.returncode != 0:
                    raise RuntimeError(f"routerd send exited {sender.returncode}:\n{sender.stdout.read()}")
            now_count = int(servers.psql(database_url, "SELECT count(*) FROM udp_messages") or 0) if count < args.total \
                else count
            if now_count != count:
                count, last_change = now_count, time.monotonic()
            if count >= args.total and sent_at is not None:
                break
            if sent_at is not None and time.monotonic() - last_change > STALL_SECONDS:
                break
        stored_at = last_change
        broker_after, database_after = servers.servers_cpu_seconds()
        ingest_cpu, store_cpu = process_cpu_seconds(ingest.process.pid), process_cpu_seconds(store.process.pid)
        ingest_rss, store_rss = peak_rss_mib(ingest.process.pid), peak_rss_mib(store.process.pid)
        ingest_stats, store_stats = read_stats(ingest_dashboard), read_stats(store_dashboard)
        rows, distinct, foreign = (int(value) for value in servers.psql(
            database_url,
            # The seed client's texts, "This is being sent via the UDP protocol. #<n>", n from 1.
            "SELECT count(*), count(DISTINCT text), "
            "count(*) FILTER (WHERE client_id::text <> '1' OR text !~ '^This is being sent via the UDP protocol\\. #[0-9]+$' "
            f"OR substring(text from '#([0-9]+)$')::bigint NOT BETWEEN 1 AND {args.total}) FROM udp_messages").split("|"))
    finally:
        ingest_code, store_code = ingest.stop(), store.stop()
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    per_100k = 100_000 / args.total
    return {
        "offered_per_second": rate,
        "batch_per_message": batch_per_message,
        "amqp_messages": counter(store_stats, "from_broker", "received"),
        "sent": args.total,
        "send_seconds": round(sent_at - started, 3),
        "last_row_seconds": round(stored_at - started, 3),
        "stored_per_second": round(count / (stored_at - started)) if stored_at > started else None,
        "rows": rows,
        "distinct_messages": distinct,
        "unexpected_rows": foreign,
        "lost": args.total - distinct,
        "copies": rows - distinct,
        "kernel_drops": counter(ingest_stats, "udp_in", "kernel_drops"),
        "rejected": counter(ingest_stats, "verified", "rejected"),
        "published": counter(ingest_stats, "to_broker", "published"),
        "redelivered": counter(store_stats, "from_broker", "redelivered"),
        "ingest_cpu_s_per_100k": round(ingest_cpu * per_100k, 3),
        "store_cpu_s_per_100k": round(store_cpu * per_100k, 3),
        "broker_cpu_s_per_100k": round((broker_after - broker_before) * per_100k, 3),
        "database_cpu_s_per_100k": round((database_after - database_before) * per_100k, 3),
        "ingest_rss_mib": round(ingest_rss, 1) if ingest_rss else None,
        "store_rss_mib": round(store_rss, 1) if store_rss else None,
        "exit_codes": [ingest_code, store_code],
    }


def format_table(rows):
    header = ("| offered/s | per message | stored/s | last row s |    sent |  stored | lost | copies | ingest CPU-s | "
              "store CPU-s | broker CPU-s | db CPU-s | RSS MiB (in/store) |")
    lines = [header, "|" + "|".join("-" * (len(cell) - 1) + ":" for cell in header.split("|")[1:-1]) + "|"]
    for row in rows:
        rss = f"{row['ingest_rss_mib']} / {row['store_rss_mib']}"
        lines.append(
            f"| {row['offered_per_second']:>9,} | {row['batch_per_message']:>11} | {row['stored_per_second'] or 0:>8,} | {row['last_row_seconds']:>10} "
            f"| {row['sent']:>7,} | {row['distinct_messages']:>7,} | {row['lost']:>4} | {row['copies']:>6} "
            f"| {row['ingest_cpu_s_per_100k']:>12} | {row['store_cpu_s_per_100k']:>11} "
            f"| {row['broker_cpu_s_per_100k']:>12} | {row['database_cpu_s_per_100k']:>8} | {rss:>18} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=parse_rates, default=DEFAULT_RATES,
                        help="messages per second, comma separated (default 5k,10k,20k)")
    parser.add_argument("--total", type=int, default=int(os.environ.get("BENCH_TOTAL", "200000")),
                        help="messages per rate (default 200,000; BENCH_TOTAL)")
    parser.add_argument("--batch-per-message", type=parse_rates, default=[1],
                        help="the ingest tier's batch_per_message values, comma separated (default 1)")
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/routerd"))
    parser.add_argument("--output", default=os.path.join(ROOT, ".build/bench/bench-diode-results.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"no routerd binary at {args.binary}: run `make release` first")

    servers = Servers(args.keep)
    rows = []
    try:
        runs = [(rate, batch) for rate in args.rates for batch in args.batch_per_message]
        for index, (rate, batch) in enumerate(runs):
            print(f"rate {rate:,}/s, batch_per_message {batch}: {args.total:,} signed messages ...", file=sys.stderr)
            row = bench_rate(args, servers, rate, index, batch)
            rows.append(row)
            print(f"  stored {row['distinct_messages']:,} in {row['last_row_seconds']} s, lost {row['lost']}, "
                  f"copies {row['copies']}", file=sys.stderr)
    finally:
        servers.stop()
    print(format_table(rows))
    lossy = [row for row in rows if row["lost"] or row["unexpected_rows"]]
    if lossy:
        print(f"\nLOSS in {len(lossy)} run(s): see {args.output}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump({
            "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.node()} {os.cpu_count()} cores {platform.machine()}",
            "total": args.total, "rows": rows,
        }, handle, indent=2)
    print(f"\nwritten to {os.path.relpath(args.output, ROOT)}")
    return 1 if lossy else 0


if __name__ == "__main__":
    sys.exit(main())
