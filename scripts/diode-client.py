#!/usr/bin/env python3
"""Sends data-diode messages the way the seed's Python client makes them, independently of routerd's own sender.

Each datagram is exactly what the seed's Source1/client.py sends: {"client_id": <int>, "text": "This is being sent
via the UDP protocol. #<n>", "token", "checksum"}, `token` a PyJWT HS256 token with the claims
{"iss": "udp_client", "iat": now, "exp": now + 30} signed with SECRET_KEY, `checksum` the MD5 hex digest of
json.dumps(message_without_checksum, sort_keys=True). The counter in the text starts at --first (1) so the rows a
store router wrote can be counted against what was sent. Needs PyJWT (pip install PyJWT).

    SECRET_KEY=... python3 scripts/diode-client.py --port 9999 --count 1000 [--client-id 1] [--rate 5000]
"""

import argparse
import hashlib
import json
import os
import socket
import sys
import time

import jwt


def message(client_id, counter, secret, issuer, now):
    """Source1/client.py's generate_jwt, add_checksum_and_token and json.dumps."""
    token = jwt.encode({"iss": issuer, "iat": int(now), "exp": int(now) + 30}, secret, algorithm="HS256")
    body = {"client_id": client_id, "text": f"This is being sent via the UDP protocol. #{counter}", "token": token}
    body["checksum"] = hashlib.md5(
        json.dumps({k: v for k, v in body.items() if k != "checksum"}, sort_keys=True).encode("utf-8")).hexdigest()
    return json.dumps(body).encode("utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--client-id", type=int, default=1, help="the integer client_id of every message (seed: 1)")
    parser.add_argument("--first", type=int, default=1, help="the counter of the first message's text")
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
        sock.sendto(message(args.client_id, args.first + n, args.secret, args.issuer, time.time()),
                    (args.host, args.port))
    print(f"sent {args.count} messages to {args.host}:{args.port} in {time.monotonic() - start:.2f} s")


if __name__ == "__main__":
    main()
