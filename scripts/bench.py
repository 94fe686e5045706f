#!/usr/bin/env python3
"""routerd benchmark: the stock config under `routerd loadtest` at several rates.

For each rate it starts a fresh routerd (examples/router.yaml, LOG_DIR in a new temporary directory), sends
BENCH_TOTAL entries (1,000,000 by default) from one loadtest worker with 1% ERRORs, waits until the log files stop
growing, samples routerd's CPU time and peak RSS, stops it with SIGTERM, and then reads every line routerd wrote to
check that each (app, sequence) landed exactly once.

At the rates in --buffer-rates (200,000/s by default) it also runs examples/bench-buffer.yaml: the stock topology
with both file outputs on disk buffers (`sync: 100ms`), for the cost of a disk buffer beside the memory queue.

At the rates in --route-rates (200,000/s by default) it also runs examples/bench-route.yaml (the stock topology
plus a `route` of five conditions, one a regular expression, and a `modify` of three changes) right after the
stock run at the same rate, and prints what the routing costs per million entries over the stock topology.

It builds nothing: `make bench` builds the release binary first. Python 3 standard library only.
See docs/bench.md for what each column means.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RATES = [50_000, 100_000, 200_000, 300_000, 0]
# Cores used by neither routerd nor the sender during a run above which the run is repeated (and, if it stays
# so, flagged): the row would measure the neighbours too.
CONTENDED_CORES = 0.15
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The loadtest's app names: "loadtest-<worker>".
APP_PATTERN = re.compile(r"^loadtest-(\d+)$")


def parse_rate(text):
    text = text.strip().lower().replace("_", "")
    if text in ("0", "unbounded", "max", "inf"):
        return 0
    multiplier = 1
    if text.endswith("k"):
        multiplier, text = 1000, text[:-1]
    value = int(float(text) * multiplier)
    if value < 0:
        raise argparse.ArgumentTypeError("a rate is 0 (unbounded) or more")
    return value


def parse_rates(text):
    return [parse_rate(part) for part in text.split(",") if part.strip()]


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Routerd:
    """One routerd process with its stderr (JSON log lines) collected by a thread."""

    def __init__(self, binary, config, directory, extra_env):
        self.directory = directory
        self.lines = []
        self.lock = threading.Lock()
        env = dict(os.environ)
        # FLUSH_COUNT and the rest keep the stock defaults unless the caller's environment sets them on purpose.
        env.update(extra_env)
        self.process = subprocess.Popen(
            [binary, "-c", config],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.process.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.lock:
                self.lines.append(line)

    def log(self):
        with self.lock:
            return list(self.lines)

    def wait_listening(self, timeout=30):
        """The UDP port from the udp input's `listening` line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                is_udp = entry.get("type") == "udp" or ("type" not in entry and entry.get("stage") == "udp_in")
                if entry.get("message") == "listening" and is_udp and "address" in entry:
                    return int(str(entry["address"]).rsplit(":", 1)[1])
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("routerd did not log `listening`:\n" + "\n".join(self.log()[-20:]))

    def cpu_seconds(self):
        """user + system CPU seconds of every thread so far (/proc/<pid>/stat fields 14 and 15)."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def peak_rss_bytes(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None

    def terminate(self, timeout=120):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        finally:
            self.reader.join(timeout=5)


def log_files(log_dir):
    if not os.path.isdir(log_dir):
        return []
    return sorted(os.path.join(log_dir, name) for name in os.listdir(log_dir))


def total_size(log_dir):
    size = 0
    for path in log_files(log_dir):
        try:
            size += os.path.getsize(path)
        except OSError:
            pass
    return size


def wait_until_quiet(log_dir, quiet_seconds=1.5, timeout=300):
    """Waits until the log directory stops growing for `quiet_seconds`; returns the seconds waited."""
    started = time.monotonic()
    last_size = total_size(log_dir)
    last_change = time.monotonic()
    while time.monotonic() - started < timeout:
        time.sleep(0.1)
        size = total_size(log_dir)
        if size != last_size:
            last_size, last_change = size, time.monotonic()
        elif time.monotonic() - last_change >= quiet_seconds:
            break
    return time.monotonic() - started


def read_stats(port):
    """routerd's /stats as a dict, or None when there is no http_stats output listening."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as answer:
            return json.loads(answer.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def stats_stages(stats):
    stages = stats.get("stages")
    if isinstance(stages, list):
        return [stage for stage in stages if isinstance(stage, dict)]
    if isinstance(stages, dict):
        return [dict(stage, name=name) for name, stage in stages.items() if isinstance(stage, dict)]
    return []


def stats_counter(stats, stage_type, counter):
    """Sum of `counter` over the stages of `stage_type` in /stats, or None when /stats does not show it."""
    total, found = 0, False
    for stage in stats_stages(stats):
        counters = stage.get("counters")
        if stage.get("type") == stage_type and isinstance(counters, dict):
            value = counters.get(counter)
            if isinstance(value, (int, float)):
                total, found = total + int(value), True
    return total if found else None


def stats_received(stats):
    if stats is None:
        return None
    received = stats_counter(stats, "udp", "datagrams")
    if received is None:
        for key in ("received", "total_received"):
            if isinstance(stats.get(key), (int, float)):
                return int(stats[key])
        totals = stats.get("totals")
        if isinstance(totals, dict) and isinstance(totals.get("received"), (int, float)):
            return int(totals["received"])
    return received


def check_files(log_dir, sent_by_worker):
    """Reads every line routerd wrote and checks each (app, sequence) against what was sent.

    Returns counts: lines, written (distinct loadtest entries found), duplicates, unexpected (loadtest entries
    with a sequence that was never sent), torn (lines that are not JSON objects), foreign (valid JSON that is not a
    loadtest entry), dead_letters.
    """
    seen = set()
    result = {"lines": 0, "written": 0, "duplicates": 0, "unexpected": 0, "torn": 0, "foreign": 0, "dead_letters": 0}
    for path in log_files(log_dir):
        with open(path, "rb") as handle:
            for raw in handle:
                result["lines"] += 1
                try:
                    entry = json.loads(raw)
                except ValueError:
                    result["torn"] += 1
                    continue
                if not isinstance(entry, dict):
                    result["torn"] += 1
                    continue
                if "reason" in entry and isinstance(entry.get("entry"), str) and "sequence" not in entry:
                    result["dead_letters"] += 1
                    try:
                        entry = json.loads(entry["entry"])
                    except ValueError:
                        continue
                    if not isinstance(entry, dict):
                        continue
                app = entry.get("app")
                sequence = entry.get("sequence", entry.get("seq"))
                match = APP_PATTERN.match(app) if isinstance(app, str) else None
                if match is None or not isinstance(sequence, int) or isinstance(sequence, bool):
                    result["foreign"] += 1
                    continue
                worker = int(match.group(1))
                if not 1 <= sequence <= sent_by_worker.get(worker, 0):
                    result["unexpected"] += 1
                    continue
                key = (worker, sequence)
                if key in seen:
                    result["duplicates"] += 1
                else:
                    seen.add(key)
    result["written"] = len(seen)
    return result


def machine_busy_seconds():
    """CPU seconds all cores have spent busy since boot (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / CLOCK_TICKS


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_loadtest(binary, port, rate, total, workers, error_ratio, timeout):
    command = [
        binary, "loadtest",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--rate", str(rate), "--total", str(total),
        "--error-ratio", str(error_ratio), "--host-name", "bench", "--json",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if finished.returncode != 0:
        raise RuntimeError(f"loadtest exited {finished.returncode}:\n{finished.stderr}{finished.stdout}")
    lines = [line for line in finished.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError("loadtest printed no JSON report:\n" + finished.stdout + finished.stderr)
    return json.loads(lines[-1])


def bench_rate(args, rate, config=None):
    directory = tempfile.mkdtemp(prefix="routerd-bench-")
    log_dir = os.path.join(directory, "logs")
    dashboard_port = free_tcp_port()
    env = {
        "LOG_DIR": log_dir,
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": "0",
        "RCVBUF_SIZE": "4194304",
        "DASHBOARD_PORT": str(dashboard_port),
    }
    config = config or args.config
    routerd = Routerd(args.binary, config, directory, env)
    try:
        port = routerd.wait_listening()
        # Startup (config, threads, first allocations) is not part of the cost per entry: measure from here,
        # after a second at rest, and record the idle rate over that second.
        time.sleep(1.0)
        idle_start = routerd.cpu_seconds()
        time.sleep(1.0)
        baseline = routerd.cpu_seconds()
        idle_per_second = baseline - idle_start
        expected_seconds = args.total / rate if rate > 0 else args.total / 100_000
        busy_before = machine_busy_seconds()
        sender_before = children_cpu_seconds()
        wall_before = time.monotonic()
        report = run_loadtest(
            args.binary, port, rate, args.total, args.workers, args.error_ratio, timeout=expected_seconds * 3 + 120)
        # The sender has been waited for, so its CPU time is in RUSAGE_CHILDREN; routerd's is not (still running).
        sender_cpu = children_cpu_seconds() - sender_before
        routerd_cpu_during_send = routerd.cpu_seconds() - baseline
        send_wall = time.monotonic() - wall_before
        other_cpu = machine_busy_seconds() - busy_before - sender_cpu - routerd_cpu_during_send
        waited = wait_until_quiet(log_dir)
        stats = read_stats(dashboard_port)
        cpu = routerd.cpu_seconds() - baseline
        peak_rss = routerd.peak_rss_bytes()
        status = routerd.terminate()
    except BaseException:
        routerd.terminate(timeout=10)
        raise
    sent = int(report["sent"])
    # Each worker sends sequences 1...n; with one worker n == sent. With several, the shares differ by at most
    # one and the loadtest reports no per-worker count, so a sequence above the share is only "unexpected".
    workers = int(report.get("workers", args.workers))
    sent_by_worker = {index: sent // workers + (1 if index < sent % workers else 0) for index in range(workers)}
    files = check_files(log_dir, sent_by_worker)
    received = stats_received(stats)
    latency = report.get("ack_latency", {})
    row = {
        "config": os.path.splitext(os.path.basename(config))[0],
        "offered_rate": rate,
        "achieved_rate": round(float(report.get("achieved_rate", 0)), 1),
        "sent": sent,
        "send_failed": int(report.get("send_failed", 0)),
        "received": received if received is not None else files["written"],
        "received_source": "stats" if received is not None else "lines",
        "kernel_drops": stats_counter(stats, "udp", "kernel_drops") if stats else None,
        "written": files["written"],
        "loss": sent - files["written"],
        "loss_percent": round((sent - files["written"]) / sent * 100, 4) if sent else 0.0,
        "cpu_seconds": round(cpu, 3),
        "cpu_seconds_per_million": round(cpu / sent * 1_000_000, 3) if sent else None,
        "idle_cpu_seconds_per_second": round(idle_per_second, 3),
        "sender_cpu_seconds_per_million": round(sender_cpu / sent * 1_000_000, 3) if sent else None,
        # CPU that neither routerd nor the sender used while the sender ran (other processes, ksoftirqd), in
        # cores: a benchmark on a machine where this is well above 0 measured the neighbours too.
        "other_cpu_cores": round(max(0.0, other_cpu) / send_wall, 3) if send_wall > 0 else None,
        "peak_rss_mib": round(peak_rss / (1 << 20), 1) if peak_rss else None,
        "errors_sent": int(report.get("errors_sent", 0)),
        "errors_acked": int(report.get("errors_acked", 0)),
        "ack_p50_ms": latency.get("p50_ms"),
        "ack_p99_ms": latency.get("p99_ms"),
        "ack_p999_ms": latency.get("p999_ms"),
        "lines": files["lines"],
        "duplicates": files["duplicates"],
        "unexpected": files["unexpected"],
        "torn": files["torn"],
        "foreign": files["foreign"],
        "dead_letters": files["dead_letters"],
        "drain_wait_seconds": round(waited, 2),
        "exit_status": status,
    }
    if args.keep:
        row["directory"] = directory
    else:
        shutil.rmtree(directory, ignore_errors=True)
    return row


def format_table(rows):
    headers = ["config", "offered/s", "achieved/s", "sent", "received", "written", "loss %", "CPU-s/M", "RSS MiB", "ack p99 ms"]

    def cell(row, key):
        value = row.get(key)
        if value is None:
            return "-"
        if key == "offered_rate":
            return "unbounded" if value == 0 else f"{value:,}"
        if key == "achieved_rate":
            return f"{value:,.0f}"
        if key in ("sent", "received", "written"):
            return f"{value:,}"
        if key == "loss_percent":
            return f"{value:.3f}"
        if key == "cpu_seconds_per_million":
            return f"{value:.2f}"
        if key == "peak_rss_mib":
            return f"{value:.1f}"
        if key == "ack_p99_ms":
            return f"{value:.3f}"
        return str(value)

    keys = ["config", "offered_rate", "achieved_rate", "sent", "received", "written", "loss_percent",
            "cpu_seconds_per_million", "peak_rss_mib", "ack_p99_ms"]
    cells = [[cell(row, key) for key in keys] for row in rows]
    widths = [max(len(headers[i]), *(len(line[i]) for line in cells)) for i in range(len(headers))]
    out = ["| " + " | ".join(h.rjust(w) for h, w in zip(headers, widths)) + " |"]
    out.append("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for line in cells:
        out.append("| " + " | ".join(c.rjust(w) for c, w in zip(line, widths)) + " |")
    return "\n".join(out)


def machine_description():
    description = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    try:
        with open("/proc/sys/net/core/rmem_max") as handle:
            description["rmem_max"] = int(handle.read())
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    description["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return description


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=parse_rates, default=DEFAULT_RATES,
                        help="comma-separated entries/s; 0 or 'unbounded' for no pacing "
                             "(default 50000,100000,200000,300000,0)")
    parser.add_argument("--total", type=int, default=int(os.environ.get("BENCH_TOTAL", "1000000")),
                        help="entries per rate (default BENCH_TOTAL, else 1000000)")
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/routerd"),
                        help="routerd binary, used both as the server and as the sender (default .build/release/routerd)")
    parser.add_argument("--config", default=os.path.join(ROOT, "examples/router.yaml"), help="config to run")
    parser.add_argument("--route-config", default=os.path.join(ROOT, "examples/bench-route.yaml"),
                        help="the routing config run beside the stock one ('' for none)")
    parser.add_argument("--route-rates", type=parse_rates, default=[200_000],
                        help="rates at which the routing config runs too (default 200000)")
    parser.add_argument("--buffer-config", default=os.path.join(ROOT, "examples/bench-buffer.yaml"),
                        help="the stock topology with disk buffers, run beside the stock one ('' for none)")
    parser.add_argument("--buffer-rates", type=parse_rates, default=[200_000],
                        help="rates at which the disk-buffer config runs too (default 200000)")
    parser.add_argument("--workers", type=int, default=1, help="loadtest workers (default 1)")
    parser.add_argument("--error-ratio", type=float, default=0.01, help="fraction of ERROR entries (default 0.01)")
    parser.add_argument("--output", default=os.path.join(ROOT, ".build/bench/bench-results.json"),
                        help="where to write the JSON results")
    parser.add_argument("--keep", action="store_true", help="keep each run's temporary directory")
    parser.add_argument("--contention-retries", type=int, default=2,
                        help="runs of a rate repeated when other processes were busy during it (default 2)")
    args = parser.parse_args()
    args.binary = os.path.abspath(args.binary)
    args.config = os.path.abspath(args.config)
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"bench: no routerd binary at {args.binary} (run `make release`, or pass --binary)")
    if args.total <= 0:
        sys.exit("bench: --total must be more than 0")

    print(f"routerd bench: {args.total:,} entries per rate, {args.workers} loadtest worker(s), "
          f"{args.error_ratio:.0%} ERROR, config {os.path.relpath(args.config, ROOT)}", flush=True)
    rows = []
    runs = []
    extras = [(args.route_config, args.route_rates), (args.buffer_config, args.buffer_rates)]
    for rate in args.rates:
        runs.append((rate, args.config))
        for extra, rates in extras:
            if extra and rate in rates:
                runs.append((rate, os.path.abspath(extra)))
    for extra, rates in extras:
        for rate in rates:
            if extra and rate not in args.rates:
                if (rate, args.config) not in runs:
                    runs.append((rate, args.config))
                runs.append((rate, os.path.abspath(extra)))
    for rate, config in runs:
        label = ("unbounded" if rate == 0 else f"{rate:,}/s") + f" {os.path.basename(config)}"
        attempts = []
        while True:
            print(f"  {label} ...", end="", flush=True)
            row = bench_rate(args, rate, config)
            attempts.append(row)
            print(f" sent {row['sent']:,} at {row['achieved_rate']:,.0f}/s, written {row['written']:,}, "
                  f"loss {row['loss_percent']:.3f} %, {row['cpu_seconds_per_million']} CPU-s/M, "
                  f"others used {row['other_cpu_cores']} cores", flush=True)
            if (row["other_cpu_cores"] or 0) <= CONTENDED_CORES or len(attempts) > args.contention_retries:
                break
            print(f"  {label}: other processes were busy during the run; running it again", flush=True)
        # The least disturbed attempt stands for the rate.
        row = min(attempts, key=lambda attempt: attempt["other_cpu_cores"] or 0)
        row["attempts"] = len(attempts)
        row["contended"] = (row["other_cpu_cores"] or 0) > CONTENDED_CORES
        rows.append(row)

    print()
    print(format_table(rows))
    stock_name = os.path.splitext(os.path.basename(args.config))[0]
    for row in rows:
        if row["config"] == stock_name:
            continue
        stock = [r for r in rows if r["config"] == stock_name and r["offered_rate"] == row["offered_rate"]]
        if stock and row["cpu_seconds_per_million"] is not None and stock[0]["cpu_seconds_per_million"] is not None:
            extra = row["cpu_seconds_per_million"] - stock[0]["cpu_seconds_per_million"]
            print(f"{row['config']} at {row['offered_rate']:,}/s: {extra:+.2f} CPU-s per million entries over "
                  f"{stock_name}")
    problems = []
    for row in rows:
        label = "unbounded" if row["offered_rate"] == 0 else f"{row['offered_rate']:,}/s"
        for key in ("duplicates", "unexpected", "torn"):
            if row[key]:
                problems.append(f"{label}: {row[key]} {key} line(s)")
        if row["exit_status"] != 0:
            problems.append(f"{label}: routerd exited with {row['exit_status']} after SIGTERM")
        if row["send_failed"]:
            problems.append(f"{label}: the sender failed to send {row['send_failed']} entries")
        if row["contended"]:
            print(f"WARNING: {label}: other processes used {row['other_cpu_cores']:.2f} cores during the best of "
                  f"{row['attempts']} runs; its figures include contention (run again on a quiet machine)")
    if any(row["received_source"] == "lines" for row in rows):
        print("\nreceived: /stats was not available, so `received` shows the entries found in the files.")
    for problem in problems:
        print(f"PROBLEM: {problem}")

    document = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "total": args.total,
        "workers": args.workers,
        "error_ratio": args.error_ratio,
        "binary": args.binary,
        "config": args.config,
        "machine": machine_description(),
        "results": rows,
    }
    try:
        revision = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, timeout=5)
        if revision.returncode == 0:
            document["revision"] = revision.stdout.strip()
            # --no-optional-locks: never write the index while others may be using the repository.
            changes = subprocess.run(["git", "--no-optional-locks", "-C", ROOT, "status", "--porcelain",
                                      "--untracked-files=no"], capture_output=True, text=True, timeout=5)
            if changes.returncode == 0 and changes.stdout.strip():
                document["revision"] += "-dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    print(f"\nwrote {os.path.relpath(args.output, ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
