#!/usr/bin/env python3
"""routerd disk-buffer outage benchmark: a long RabbitMQ outage under load, with routerd's RSS sampled.

It starts a private RabbitMQ node (scripts/rabbitmq-node.sh), a routerd whose `amqp` output has a disk buffer,
lets the output declare its queue, then stops the broker and sends entries at --rate for --seconds (by default
20,000/s for 600 s: 12 million entries) while it samples routerd's RSS every second. Then it starts the broker
again, waits until the buffer is empty, and counts the messages in the queue: every entry routerd received must be
there (the queue is counted by rabbitmqctl; routerd's own counters are printed beside it).

  python3 scripts/bench-buffer-outage.py [--rate 20000] [--seconds 600]   (make bench-buffer-outage)

Writes .build/bench/bench-buffer-outage.json.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = os.path.join(ROOT, "scripts/rabbitmq-node.sh")

CONFIG = """
router:
  data_dir: "{data}"
inputs:
  udp_in: {{ type: udp, address: 127.0.0.1, port: 0, receive_buffer_bytes: 64MiB }}
outputs:
  to_broker:
    type: amqp
    inputs: [udp_in]
    url: "{url}"
    queue: outage
    reconnect_backoff_max: 1s
    buffer: {{ type: disk, max_size: 20GiB, sync: 100ms }}
  stats: {{ type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: {stats_port}, when_full: drop_newest }}
"""


def node(*arguments):
    return subprocess.run([NODE, *arguments], check=True, capture_output=True, text=True).stdout.strip()


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def stats(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as reply:
        return json.load(reply)


def stage(document, name):
    return next(s for s in document["stages"] if s["name"] == name)


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=20_000, help="entries/s while the broker is away")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("OUTAGE_SECONDS", "600")),
                        help="length of the outage under load (default OUTAGE_SECONDS, else 600)")
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/routerd"))
    parser.add_argument("--output", default=os.path.join(ROOT, ".build/bench/bench-buffer-outage.json"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="routerd-outage-")
    broker_dir = os.path.join(work, "rabbitmq")
    stats_port = free_port()
    routerd = None
    try:
        url = node("start", broker_dir).splitlines()[-1]
        config = os.path.join(work, "router.yaml")
        with open(config, "w") as handle:
            handle.write(CONFIG.format(data=os.path.join(work, "data"), url=url, stats_port=stats_port))
        log = open(os.path.join(work, "routerd.log"), "w")
        routerd = subprocess.Popen([args.binary, "-c", config], stderr=log, stdout=subprocess.DEVNULL, cwd=work)
        port = None
        deadline = time.time() + 30
        while time.time() < deadline and port is None:
            time.sleep(0.2)
            with open(os.path.join(work, "routerd.log")) as lines:
                for line in lines:
                    entry = json.loads(line)
                    if entry.get("message") == "listening" and entry.get("stage") == "udp_in":
                        port = int(entry["address"].rsplit(":", 1)[1])
        if port is None:
            sys.exit("bench-buffer-outage: routerd did not start; see " + log.name)
        time.sleep(2)  # the output connects and declares its queue
        node("stop", broker_dir)
        print(f"broker stopped; sending {args.rate:,}/s for {args.seconds} s", flush=True)
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append((time.time(), rss_bytes(routerd.pid)))
                stop.wait(1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        sender = subprocess.run(
            [args.binary, "loadtest", "--port", str(port), "--workers", "1", "--rate", str(args.rate),
             "--total", str(args.rate * args.seconds), "--error-ratio", "0", "--json", "--ack-wait", "0s",
             "--stats-wait", "0s"], capture_output=True, text=True)
        report = json.loads(sender.stdout) if sender.stdout.strip().startswith("{") else {}
        during = stats(stats_port)
        held = stage(during, "to_broker").get("buffer", {})
        outage_peak = max(rss for _, rss in samples)
        print(f"sent {report.get('sent', '?'):,}; buffer holds {held.get('events', 0):,} entries in "
              f"{held.get('bytes', 0) / 2**20:,.0f} MiB; peak RSS so far {outage_peak / 2**20:.1f} MiB", flush=True)
        node("start", broker_dir)
        start = time.time()
        while True:
            time.sleep(5)
            buffer = stage(stats(stats_port), "to_broker").get("buffer", {})
            print(f"  draining: {buffer.get('events', 0):,} entries left", flush=True)
            if buffer.get("events", 1) == 0:
                break
        drain_seconds = time.time() - start
        stop.set()
        sampler.join()
        final = stats(stats_port)
        out = stage(final, "to_broker")["counters"]
        queue = node("ctl", broker_dir, "list_queues", "name", "messages")
        in_queue = next(int(line.split()[1]) for line in queue.splitlines() if line.split()[:1] == ["outage"])
        sent = report.get("sent", 0)
        result = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "rate": args.rate, "seconds": args.seconds, "sent": sent,
            "buffered_bytes_at_end_of_outage": held.get("bytes"), "buffered_events_at_end_of_outage": held.get("events"),
            "peak_rss_mib_during_outage": round(outage_peak / 2**20, 1),
            "peak_rss_mib": round(max(rss for _, rss in samples) / 2**20, 1),
            "drain_seconds": round(drain_seconds, 1), "messages_in_queue": in_queue,
            "events_out": out.get("events_out"), "events_dropped": out.get("events_dropped"),
            "lost": sent - in_queue,
        }
        print(json.dumps(result, indent=2))
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as handle:
            json.dump(result, handle, indent=2)
        return 0 if result["lost"] == 0 and result["peak_rss_mib"] < 100 else 1
    finally:
        if routerd and routerd.poll() is None:
            routerd.terminate()
            try:
                routerd.wait(60)
            except subprocess.TimeoutExpired:
                routerd.kill()
        subprocess.run([NODE, "stop", broker_dir], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
