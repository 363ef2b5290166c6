"""hello: the sample app deployer releases. Standard library only.

GET /         -> "hello from <VERSION>"
GET /healthz  -> 200 "ok" (or 500 when the build is broken on purpose, see below)

BROKEN=1 in app.env (or a file named BROKEN next to this one) makes the health check fail,
which is how the tests build a version that must be rejected. FAIL_AFTER=<seconds> makes it
fail only after that many seconds of uptime; FLAP=<seconds> makes it alternate, healthy for
that long, then failing for that long; WARMUP=<seconds> makes it fail until it has been up
that long, as an app that loads its caches first. Each also works as a file of that name
holding the value.
ERRORS=1 (or a file named ERRORS) makes GET / answer 500 while /healthz stays 200: a build
that passes its health checks and fails its users, which only traffic metrics catch.
ERROR_RATE=<fraction> (or a file of that name) fails only that share of GET / (0.1: every
tenth request), as a build with a bug on some paths does. RESET_RATE=<fraction> (or a file)
resets that share of GET /'s connections without answering, as a build that crashes its
worker does: users get the load balancer's 502, and only its connection-error count shows it.
Each such answer logs `ERROR GET /: <cause>` to stderr, the cause being the ERRORS file's
text.
"""

import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = os.environ.get("VERSION", "unknown")
STARTED = time.monotonic()


def broken() -> bool:
    if os.environ.get("BROKEN") == "1" or os.path.exists(os.path.join(HERE, "BROKEN")):
        return True
    uptime = time.monotonic() - STARTED
    warmup = os.environ.get("WARMUP") or _read(os.path.join(HERE, "WARMUP"))
    if warmup and uptime < float(warmup):
        return True
    fail_after = os.environ.get("FAIL_AFTER") or _read(os.path.join(HERE, "FAIL_AFTER"))
    if fail_after and uptime > float(fail_after):
        return True
    flap = os.environ.get("FLAP") or _read(os.path.join(HERE, "FLAP"))
    return bool(flap) and int(uptime / float(flap)) % 2 == 1


_SERVED = [0]
_COUNT_LOCK = threading.Lock()


def fails_this_one() -> bool:
    """Whether this GET / fails: every one with ERRORS, a steady share with ERROR_RATE."""
    if os.environ.get("ERRORS") == "1" or os.path.exists(os.path.join(HERE, "ERRORS")):
        return True
    return _steady_share("ERROR_RATE", _SERVED)


_RESET = [0]


def resets_this_one() -> bool:
    """Whether this GET / is reset without an answer: a steady share with RESET_RATE."""
    return _steady_share("RESET_RATE", _RESET)


def _steady_share(name: str, counter: list[int]) -> bool:
    rate = os.environ.get(name) or _read(os.path.join(HERE, name))
    if not rate:
        return False
    with _COUNT_LOCK:
        counter[0] += 1
        served = counter[0]
    share = float(rate)
    return int(served * share) > int((served - 1) * share)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/healthz"):
            status, body = (500, "broken\n") if broken() else (200, "ok\n")
        elif self.path.startswith("/version"):
            status, body = 200, json.dumps({"version": VERSION}) + "\n"
        elif resets_this_one():
            print(
                f"ERROR GET {self.path}: worker crashed (RESET_RATE)", file=sys.stderr, flush=True
            )
            # SO_LINGER 0: close with a TCP reset, no answer at all
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        elif fails_this_one():
            status, body = 500, f"error from {VERSION}\n"
            cause = _read(os.path.join(HERE, "ERRORS")) or "ERRORS or ERROR_RATE is set"
            print(
                f"ERROR GET {self.path}: {cause if cause != '1' else 'ERRORS is set'}",
                file=sys.stderr,
                flush=True,
            )
        else:
            status, body = 200, f"hello from {VERSION}\n"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def main() -> None:
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"hello {VERSION} listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
