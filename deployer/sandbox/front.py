"""A local HTTP front for each ALB listener: forwards by the listener's weights to healthy targets.

So `curl` through the sandbox shows which version is live. Like an ALB, a target group whose
targets are all unhealthy gets no traffic while another has healthy targets, and when none has,
the front fails open to every registered target.
"""

from __future__ import annotations

import fnmatch
import http.client
import logging
import random
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from deployer.sandbox import alarms
from deployer.sandbox.layout import Layout, write_json
from deployer.sandbox.prober import EndpointOf, elbv2_backend

log = logging.getLogger("deployer.sandbox.front")
HealthOf = Callable[[str, str], tuple[str, str, str] | None]
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}


def redirect_location(config: dict[str, Any], host: str, path: str) -> str:
    """Where an ALB redirect action sends a request: each part of RedirectConfig, or the
    request's own (#{protocol}, #{host}, #{port}, #{path}, #{query} keep it).
    """
    path, _, query = path.partition("?")
    protocol = str(config.get("Protocol", "#{protocol}")).replace("#{protocol}", "HTTP").lower()
    hostname = str(config.get("Host", "#{host}")).replace("#{host}", host.split(":")[0])
    port = str(config.get("Port", "#{port}"))
    default_port = {"https": "443", "http": "80"}[protocol]
    netloc = hostname if port in ("#{port}", default_port) else f"{hostname}:{port}"
    new_path = str(config.get("Path", "/#{path}")).replace("/#{path}", path)
    new_query = str(config.get("Query", "#{query}")).replace("#{query}", query)
    return f"{protocol}://{netloc}{new_path}" + (f"?{new_query}" if new_query else "")


def weighted_groups(actions: list[Any]) -> list[tuple[str, int]] | dict[str, Any]:
    """The forward weights of a listener's default action, or its fixed response (a
    redirect is a fixed response with a Location).
    """
    for action in actions:
        data = getattr(action, "data", action)
        if data.get("Type") == "fixed-response":
            return dict(data.get("FixedResponseConfig", {}))
        if data.get("Type") == "redirect":
            config = dict(data.get("RedirectConfig", {}))
            status = str(config.get("StatusCode", "HTTP_301")).removeprefix("HTTP_")
            return {"StatusCode": status, "MessageBody": "", "Redirect": config}
        if data.get("Type") == "forward":
            groups = data.get("ForwardConfig", {}).get("TargetGroups")
            if groups:
                return [(g["TargetGroupArn"], int(g.get("Weight", 1))) for g in groups]
            return [(data["TargetGroupArn"], 1)]
    return {"StatusCode": "503", "MessageBody": "listener has no action"}


def actions_for(listener: Any, path: str) -> list[Any]:
    """The actions of the first rule (by priority) whose path patterns match, as an ALB
    evaluates them; the default actions when none does.
    """
    rules = sorted(getattr(listener, "_non_default_rules", {}).values(), key=lambda r: r.priority)
    for rule in rules:
        patterns = [
            value
            for condition in rule.conditions
            if condition.get("Field") == "path-pattern"
            for value in (
                condition.get("PathPatternConfig", {}).get("Values") or condition.get("Values", [])
            )
        ]
        if patterns and any(fnmatch.fnmatchcase(path.split("?")[0], p) for p in patterns):
            return list(rule.actions)
    return list(listener.default_actions)


def choose_target(
    weights: list[tuple[str, int]],
    health_of: HealthOf,
    rng: random.Random,
    running: Callable[[str], bool] = lambda _id: True,
) -> tuple[str, str] | None:
    """A healthy target by the weights. An instance that is no longer running gets no new
    request (Auto Scaling deregisters an instance before it terminates it, so the ALB drains
    it; moto leaves it registered), however recently its last health check passed.
    """
    backend = elbv2_backend()
    healthy: dict[str, list[str]] = {}
    registered: list[tuple[str, str]] = []
    for arn, weight in weights:
        group = backend.target_groups.get(arn)
        if group is None or weight <= 0:
            continue
        ids = [i for i in group.targets if running(i)]
        registered += [(arn, i) for i in ids]
        ok = [i for i in ids if (health_of(arn, i) or ("initial",))[0] == "healthy"]
        if ok:
            healthy[arn] = ok
    if healthy:
        arns = list(healthy)
        arn = rng.choices(arns, weights=[dict(weights)[a] for a in arns])[0]
        return arn, rng.choice(healthy[arn])
    return rng.choice(registered) if registered else None  # fail open, as an ALB does


class Fronts:
    def __init__(
        self,
        layout: Layout,
        health_of: HealthOf,
        endpoint_of: EndpointOf,
        target_timeout_s: float = 60.0,
    ) -> None:
        self._layout = layout
        # The ALB's idle timeout (60 s by default): a target silent that long gets a 504.
        self._target_timeout_s = target_timeout_s
        self._health_of = health_of
        self._endpoint_of = endpoint_of
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._rng = random.Random()

    def reconcile(self) -> None:
        wanted: dict[str, Any] = {}
        for lb in list(elbv2_backend().load_balancers.values()):
            for listener in list(lb.listeners.values()):
                wanted[f"{lb.dns_name}:{listener.port}"] = listener
        changed = False
        for key, listener in wanted.items():
            if key not in self._servers:
                self._servers[key] = self._serve(listener)
                changed = True
        for key in set(self._servers) - set(wanted):
            self._servers.pop(key).shutdown()
            changed = True
        if changed:
            write_json(
                self._layout.fronts_file,
                {
                    key: f"http://127.0.0.1:{server.server_address[1]}/"
                    for key, server in self._servers.items()
                },
            )

    def _serve(self, listener: Any) -> ThreadingHTTPServer:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug(format, *args)

            def _forward(self) -> None:
                routing = weighted_groups(actions_for(listener, self.path))
                if isinstance(routing, dict):
                    message = str(routing.get("MessageBody", "")).encode()
                    headers = {}
                    if "Redirect" in routing:
                        host = self.headers.get("Host", "localhost")
                        headers["Location"] = redirect_location(
                            routing["Redirect"], host, self.path
                        )
                    self._reply(int(routing.get("StatusCode", 503)), message, headers)
                    return
                chosen = choose_target(
                    routing,
                    front._health_of,
                    front._rng,
                    lambda i: front._endpoint_of(i) is not None,
                )
                endpoint = front._endpoint_of(chosen[1]) if chosen else None
                if chosen is None or endpoint is None:
                    self._reply(503, b"no targets\n", {})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                upstream = http.client.HTTPConnection(
                    endpoint[0], endpoint[1], timeout=front._target_timeout_s
                )
                started = time.monotonic()
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                    alarms.publish(chosen[0], response.status, time.monotonic() - started)
                    passed = {
                        k: v
                        for k, v in response.getheaders()
                        if k.lower() not in HOP_HEADERS | {"content-length"}
                    }
                    passed["X-Deployer-Target"] = chosen[1]
                    self._reply(response.status, payload, passed)
                except TimeoutError:  # the target took the connection and never answered
                    alarms.publish_elb_error(chosen[0], 504)
                    self._reply(504, b"gateway timeout\n", {})
                except OSError as exc:  # refused or reset: the ALB's own 502
                    alarms.publish_elb_error(chosen[0], 502)
                    self._reply(502, f"bad gateway: {exc}\n".encode(), {})
                finally:
                    upstream.close()

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="front", daemon=True).start()
        log.info("front for listener port %s on %s", listener.port, server.server_address)
        return server

    def close(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        self._servers.clear()
