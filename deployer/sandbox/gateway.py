"""The sandbox's front door: every AWS call reaches moto through here.

- API latency (`api_latency_ms`, scaled) before each call;
- outages: while one lasts the port is closed (connections are refused) and calls on
  connections already open are dropped;
- S3 as AWS has it for buckets made after 2020-06-24: SigV2 requests and presigned URLs, and
  expired or unsigned ones, are refused with 403 AccessDenied; throttling (SlowDown) and
  server errors too, since S3 does not go through moto's call_action;
- the control API under /_sandbox/: behaviours (GET, POST to change), the timeline of
  modelled operations, and outages.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import BaseWSGIServer, make_server

from deployer.sandbox.faults import Faults
from deployer.sandbox.world import World

log = logging.getLogger("deployer.sandbox.gateway")
StartResponse = Callable[..., Any]
CONTROL = "/_sandbox/"


def service_of(environ: dict[str, Any]) -> str:
    """The signing name of a call: from SigV4's credential scope, or S3 for SigV2."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth.startswith("AWS4-HMAC-SHA256"):
        scope = auth.split("Credential=", 1)[-1].split(",", 1)[0].split("/")
        return scope[3] if len(scope) > 3 else ""
    if auth.startswith("AWS "):
        return "s3"
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    credential = (query.get("X-Amz-Credential") or [""])[0].split("/")
    if len(credential) > 3:
        return credential[3]
    if "Signature" in query or environ.get("PATH_INFO", "/") != "/":
        return "s3"  # SigV2 presigned, or an unsigned object URL
    return ""


def s3_refusal(environ: dict[str, Any], now: datetime) -> str | None:
    """Why S3 refuses this request, or None: SigV4 only, and presigned URLs expire."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if auth.startswith("AWS ") or "AWSAccessKeyId" in query or "Signature" in query:
        return "Please use AWS4-HMAC-SHA256."  # S3's words for a refused SigV2 request
    if auth.startswith("AWS4-HMAC-SHA256"):
        return None
    if query.get("X-Amz-Algorithm") == ["AWS4-HMAC-SHA256"]:
        try:
            signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expires = int(query["X-Amz-Expires"][0])
        except (KeyError, ValueError):
            return "Query-string authentication requires X-Amz-Date and X-Amz-Expires."
        if (now - signed).total_seconds() > expires:
            return "Request has expired"
        return None
    return "Access Denied"  # unsigned: our buckets block public access


def _xml_error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>sandbox</RequestId><HostId>sandbox</HostId></Error>"
    ).encode()


class Gateway:
    """WSGI middleware in front of moto's app."""

    def __init__(self, app: Callable[..., Any], world: World, profile_name: str) -> None:
        self._app = app
        self._world = world
        self._faults = Faults(world)
        self.profile_name = profile_name
        self.on_outage: Callable[[float, float], None] = lambda _after, _seconds: None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL):
            return self._control(path.removeprefix(CONTROL), environ, start_response)
        if path.startswith("/moto-api"):
            return self._app(environ, start_response)
        world = self._world
        world.tick()
        service = service_of(environ)
        if world.behaviours.api_latency_ms:
            pause = world.scaled(world.behaviours.api_latency_ms / 1000)
            start = world.clock()
            world.span("api", service, start, start + pause)
            time.sleep(pause)
        if service == "s3":
            refusal = self._s3_refusal(environ)
            if refusal is not None:
                status, code, message = refusal
                return self._reply(start_response, status, _xml_error(code, message), "xml")
        with world.lock:
            return self._app(environ, start_response)

    def _s3_refusal(self, environ: dict[str, Any]) -> tuple[int, str, str] | None:
        if self._world.behaviours.sigv4_only_s3:
            why = s3_refusal(environ, datetime.now(UTC))
            if why is not None:
                return 403, "AccessDenied", why
        fault = self._faults.decide("s3")
        if fault is not None:
            return fault.status, fault.code, fault.message
        return None

    # ---- control API -------------------------------------------------------------------------

    def _control(
        self, route: str, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        world = self._world
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            body = self._json_body(environ) if method == "POST" else {}
            if route == "behaviours" and method == "POST":
                world.configure(world.behaviours.merged(body))
                data: Any = world.behaviours.to_json()
            elif route == "behaviours":
                data = world.behaviours.to_json()
            elif route == "status":
                data = {"profile": self.profile_name, "time_scale": world.time_scale}
            elif route == "timeline":
                query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
                data = world.timeline(float((query.get("since") or ["0"])[0]))
            elif route == "outage" and method == "POST":
                after, seconds = float(body.get("after_s", 0)), float(body["seconds"])
                self.on_outage(after, seconds)
                data = {"after_s": after, "seconds": seconds}
            else:
                return self._reply(start_response, 404, b'{"error": "no such route"}', "json")
        except (ValueError, KeyError, TypeError) as exc:
            message = json.dumps({"error": str(exc)}).encode()
            return self._reply(start_response, 400, message, "json")
        return self._reply(start_response, 200, json.dumps(data).encode(), "json")

    @staticmethod
    def _json_body(environ: dict[str, Any]) -> dict[str, Any]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b"{}"
        parsed = json.loads(raw or b"{}")
        if not isinstance(parsed, dict):
            raise ValueError("expected a JSON object")
        return parsed

    @staticmethod
    def _reply(start_response: StartResponse, status: int, body: bytes, kind: str) -> list[bytes]:
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}.get(
            status, "Error"
        )
        content_type = "application/json" if kind == "json" else "application/xml"
        start_response(
            f"{status} {reason}",
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        return [body]


class Listener:
    """The sandbox's HTTP port. An outage closes it (connections refused) and then reopens it
    on the same port; requests on connections that were already open are dropped meanwhile.
    """

    def __init__(self, app: Callable[..., Any], host: str, port: int, world: World) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._world = world
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        world = self._world

        class Handler(MotoRequestHandler):
            def handle_one_request(self) -> None:
                if world.in_outage:
                    self.close_connection = True
                    return
                super().handle_one_request()

        with self._lock:
            self._server = make_server(
                self._host, self._port, self._app, threaded=True, request_handler=Handler
            )
            self._thread = threading.Thread(
                target=self._server.serve_forever, daemon=True, name="sandbox-http"
            )
            self._thread.start()

    def _close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def stop(self) -> None:
        self._stopped = True
        self._close()

    def outage(self, after_s: float, seconds: float) -> None:
        """Refuse connections for `seconds`, starting `after_s` from now (both real seconds)."""

        def run() -> None:
            time.sleep(after_s)
            if self._stopped:
                return
            self._world.outage_until = self._world.clock() + seconds
            log.info("outage: refusing connections for %.1fs", seconds)
            self._close()
            time.sleep(seconds)
            if not self._stopped:
                self.start()
                log.info("outage over")

        threading.Thread(target=run, daemon=True, name="sandbox-outage").start()
