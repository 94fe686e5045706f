#!/usr/bin/env python3
"""Sends data-diode messages the way the seed's Python client makes them, independently of routerd's own sender.

Each datagram is {"client_id", "text", "token", "checksum"}: `token` is a PyJWT HS256 token (issuer `udp_client`,
30 s expiry) signed with SECRET_KEY, and `checksum` the MD5 hex digest of
json.dumps(message_without_checksum, sort_keys=True). Texts carry a sequence number ("seq=17 ...") so the rows a
store router wrote can be counted against what was sent. Needs PyJWT (pip install PyJWT).

    SECRET_KEY=... python3 scripts/diode-client.py --port 9999 --count 1000 [--client py] [--rate 5000]
"""

import argparse
import hashlib
import json
import os
import socket
import sys
import time

import jwt


def message(client_id, text, secret, issuer, now):
    token = jwt.encode(
        {"client_id": client_id, "iss": issuer, "iat": int(now), "exp": int(now) + 30}, secret, algorithm="HS256")
    body = {"client_id": client_id, "text": text, "token": token}
    body["checksum"] = hashlib.md5(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return json.dumps(body).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--client", default="py", help="client_id prefix: <client>-<n>")
    parser.add_argument("--rate", type=float, default=0, help="messages per second; 0 sends as fast as it can")
    parser.add_argument("--secret", default=os.environ.get("SECRET_KEY"))
    parser.add_argument("--issuer", default="udp_client")
    args = parser.parse_args()
    if not args.secret:
        sys.exit("diode-client: no secret: set SECRET_KEY or pass --secret")

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    for n in range(args.count):
        if args.rate > 0:
            due = start + n / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        text = f"seq={n} message {n} from {args.client}"
        sock.sendto(message(f"{args.client}-{n}", text, args.secret, args.issuer, time.time()), (args.host, args.port))
    print(f"sent {args.count} messages to {args.host}:{args.port} in {time.monotonic() - start:.2f} s")


if __name__ == "__main__":
    main()
