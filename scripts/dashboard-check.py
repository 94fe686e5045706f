#!/usr/bin/env python3
"""Drives a real headless Chromium against routerd's http_stats dashboard and reports what the page shows.

Used by Tests/EndToEndTests/DashboardTests.swift, and by hand:

    scripts/dashboard-check.py --url http://127.0.0.1:8080/ --wait-total 32
    scripts/dashboard-check.py --url http://127.0.0.1:8080/ --screenshot docs/dashboard.png

It starts `chromium --headless --remote-debugging-port=0`, opens the page once, and talks to it over the
DevTools protocol (a minimal WebSocket client below: the standard library has none, and machines here are offline).

Protocol on stdin/stdout, one JSON object per line, so a test can change routerd's state between two reads of the
same page (which proves the page refreshes in place, without reloading):

    -> {"wait_total": 32, "timeout": 20}      waits until the page shows total received = 32
    <- {"ok": true, "page": {...what the page shows...}}
    -> {"screenshot": "docs/dashboard.png"}   (PNG of the viewport, --window-size)
    <- {"ok": true}
    -> {"quit": true}

With --wait-total or --screenshot on the command line it runs that one command and quits.
"""

import argparse
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

READ_PAGE = r"""
(() => {
  const value = (id) => { const n = document.getElementById(id); return n ? n.dataset.value : null; };
  const errors = [...document.querySelectorAll('#errors tr')].map((tr) =>
    [...tr.querySelectorAll('td')].map((td) => td.textContent));
  const ledger = [...document.querySelectorAll('#ledger tr')].map((tr) =>
    [...tr.querySelectorAll('td')].map((td) => td.textContent));
  const levels = {};
  for (const bar of document.querySelectorAll('#levels .bar')) levels[bar.id.replace('level-', '')] = bar.dataset.value;
  return {
    total: value('total'), rate: value('rate'), uptime: value('uptime'), errors_seen: value('errors-seen'),
    missing: value('missing'), status: document.getElementById('status').textContent,
    refreshes: Number(document.body.dataset.refreshes || 0), marker: window.__dashboardCheckMarker || null,
    levels: levels, errors: errors, ledger: ledger,
    errors_html: document.getElementById('errors').innerHTML,
    script_elements_in_tables: document.querySelectorAll('main script').length,
    // Elements an entry's text could have made, had it reached the markup: none belong in the tables.
    injected_elements: document.querySelectorAll(
      '#errors :not(tr):not(td), #ledger :not(tr):not(td), main script, main img, main svg, main iframe, '
      + 'main object, main embed, main a, main style').length,
    // Set by an injected payload that ran; and every Content-Security-Policy violation the page saw.
    xss_ran: window.__xssRan || [],
    csp_violations: window.__cspViolations || [],
    title: document.title,
  };
})()
"""


# Installed before any page script runs: records every Content-Security-Policy violation (the page's own
# script and style must cause none; a payload that reached the markup would).
BEFORE_PAGE = r"""
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sample || ''));
});
"""


class WebSocket:
    """Just enough RFC 6455 for the DevTools protocol: masked text frames out, unmasked frames in."""

    def __init__(self, url):
        assert url.startswith("ws://")
        hostport, _, path = url[len("ws://"):].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("DevTools closed the connection during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError("DevTools refused the WebSocket: " + head.decode(errors="replace"))

    def send(self, text):
        payload = text.encode()
        header = bytearray([0x81])
        if len(payload) < 126:
            header.append(0x80 | len(payload))
        elif len(payload) < 65536:
            header.append(0x80 | 126)
            header += struct.pack(">H", len(payload))
        else:
            header.append(0x80 | 127)
            header += struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + mask + masked)

    def _exact(self, count):
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise RuntimeError("DevTools closed the connection")
            data += chunk
        return data

    def receive(self):
        message = b""
        while True:
            first, second = self._exact(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._exact(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._exact(8))[0]
            mask = self._exact(4) if second & 0x80 else None
            payload = self._exact(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x8:
                raise RuntimeError("DevTools closed the WebSocket")
            if opcode in (0x9, 0xA):  # ping, pong: no reply needed for a short session
                continue
            message += payload
            if first & 0x80:
                return message.decode()


class Browser:
    def __init__(self, chromium, width, height):
        self.profile = tempfile.mkdtemp(prefix="routerd-chromium-")
        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--no-default-browser-check", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError("chromium did not start its DevTools server")
            time.sleep(0.05)
        port = int(open(port_file).read().split("\n")[0])
        page = None
        while page is None:
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
            page = next((t for t in targets if t.get("type") == "page"), None)
            if page is None:
                if time.time() > deadline:
                    raise RuntimeError("chromium opened no page")
                time.sleep(0.05)
        self.ws = WebSocket(page["webSocketDebuggerUrl"])
        self.next_id = 0
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def call(self, method, params=None):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        while True:
            reply = json.loads(self.ws.receive())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError("page script failed: " + json.dumps(result["exceptionDetails"]))
        return result["result"].get("value")

    def open(self, url):
        self.call("Page.enable")
        self.call("Page.addScriptToEvaluateOnNewDocument", {"source": BEFORE_PAGE})
        self.call("Page.navigate", {"url": url})
        deadline = time.time() + 30
        while self.evaluate("document.readyState") != "complete":
            if time.time() > deadline:
                raise RuntimeError("the page did not load")
            time.sleep(0.05)
        # A reload would lose this: the test checks it is still there after later refreshes.
        self.evaluate("window.__dashboardCheckMarker = 'same-page'")

    def wait_total(self, total, timeout):
        deadline = time.time() + timeout
        page = self.evaluate(READ_PAGE)
        while page["total"] != str(total):
            if time.time() > deadline:
                raise RuntimeError(f"the page shows total {page['total']}, not {total}, after {timeout}s")
            time.sleep(0.1)
            page = self.evaluate(READ_PAGE)
        return page

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def run(browser, command):
    if "wait_total" in command:
        return {"ok": True, "page": browser.wait_total(command["wait_total"], command.get("timeout", 20))}
    if "screenshot" in command:
        time.sleep(command.get("settle", 0.5))  # let the bar widths finish their transition
        browser.screenshot(command["screenshot"])
        return {"ok": True}
    if "read" in command:
        return {"ok": True, "page": browser.evaluate(READ_PAGE)}
    return {"ok": False, "error": "unknown command"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM") or shutil.which("chromium")
                        or shutil.which("chromium-browser"))
    parser.add_argument("--window-size", default="1280,1000")
    parser.add_argument("--wait-total", type=int)
    parser.add_argument("--screenshot")
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()
    if not args.chromium:
        print(json.dumps({"ok": False, "error": "chromium not found: run scripts/ensure-test-deps.sh"}), flush=True)
        return 2
    width, height = (int(part) for part in args.window_size.split(","))
    browser = Browser(args.chromium, width, height)
    try:
        browser.open(args.url)
        if args.wait_total is not None or args.screenshot:
            if args.wait_total is not None:
                print(json.dumps(run(browser, {"wait_total": args.wait_total, "timeout": args.timeout})), flush=True)
            else:
                time.sleep(2.5)  # one refresh after the first render
            if args.screenshot:
                print(json.dumps(run(browser, {"screenshot": args.screenshot})), flush=True)
            return 0
        print(json.dumps({"ok": True, "ready": True}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            if command.get("quit"):
                break
            try:
                print(json.dumps(run(browser, command)), flush=True)
            except Exception as error:  # report to the test rather than dying with a traceback
                print(json.dumps({"ok": False, "error": str(error)}), flush=True)
        return 0
    finally:
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
