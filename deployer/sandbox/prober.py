"""Real HTTP health probes of sandbox hosts, with ELBv2's path, interval, timeout and thresholds.

What `describe_target_health` returns in the sandbox comes from here (via patches.py).
`time_scale` shrinks every interval and timeout (tests use 0.2); 1.0 is AWS's timing.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from moto.elbv2.models import elbv2_backends

from deployer.sandbox.layout import ACCOUNT_ID, REGION

log = logging.getLogger("deployer.sandbox.prober")
EndpointOf = Callable[[str], tuple[str, int] | None]


def elbv2_backend() -> Any:
    return elbv2_backends[ACCOUNT_ID][REGION]


def status_matches(status: int, matcher: dict[str, Any] | None) -> bool:
    """ELBv2 matcher syntax: "200", "200,202" or "200-299"."""
    spec = str((matcher or {}).get("HttpCode", "200"))
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        if low and int(low) <= status <= int(high or low):
            return True
    return False


@dataclass
class Track:
    state: str = "initial"
    reason: str = "Elb.RegistrationInProgress"
    description: str = "Target registration is in progress"
    successes: int = 0
    failures: int = 0
    next_due: float = 0.0
    in_flight: bool = False
    registered_at: float = 0.0


@dataclass(frozen=True)
class Check:
    path: str
    timeout: float
    interval: float
    healthy_threshold: int
    unhealthy_threshold: int
    matcher: dict[str, Any] | None


def check_of(group: Any, scale: float, floor_s: float = 1.0) -> Check:
    """The target group's health check at `scale`; probes at most once every `floor_s` real
    seconds (AWS's shortest interval is 5 s: a scaled one must not spin the machine).
    """
    return Check(
        path=group.health_check_path or "/",
        # At least a second: a scaled-down timeout would fail a healthy app on a busy machine.
        timeout=max(1.0, float(group.health_check_timeout_seconds) * scale),
        interval=max(floor_s, float(group.health_check_interval_seconds) * scale),
        healthy_threshold=int(group.healthy_threshold_count),
        unhealthy_threshold=int(group.unhealthy_threshold_count),
        matcher=getattr(group, "matcher", None),
    )


def probe(endpoint: tuple[str, int] | None, check: Check) -> tuple[bool, str, str]:
    """One health check: (passed, reason code, description), as ELBv2 words them."""
    if endpoint is None:
        return False, "Target.FailedHealthChecks", "Health checks failed: instance not booted"
    connection = http.client.HTTPConnection(endpoint[0], endpoint[1], timeout=check.timeout)
    try:
        connection.request("GET", check.path, headers={"User-Agent": "ELB-HealthChecker/2.0"})
        status = connection.getresponse().status
    except TimeoutError:
        return False, "Target.Timeout", "Request timed out"
    except OSError as exc:
        return False, "Target.FailedHealthChecks", f"Health checks failed: {exc.strerror or exc}"
    finally:
        connection.close()
    if status_matches(status, check.matcher):
        return True, "", ""
    return (
        False,
        "Target.ResponseCodeMismatch",
        f"Health checks failed with these codes: [{status}]",
    )


class Prober:
    def __init__(
        self,
        endpoint_of: EndpointOf,
        time_scale: float = 1.0,
        registration_delay: Callable[[], float] = lambda: 0.0,
        on_healthy: Callable[[str, float, float], None] = lambda _id, _start, _end: None,
        floor_s: Callable[[], float] = lambda: 1.0,
    ) -> None:
        self._endpoint_of = endpoint_of
        self._floor_s = floor_s  # the fewest real seconds between two probes of a target
        self._scale = time_scale
        self._registration_delay = registration_delay  # before the first check, real seconds
        self._on_healthy = on_healthy
        self._tracks: dict[tuple[str, str], Track] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="probe")

    def lookup(self, group_arn: str, target_id: str) -> tuple[str, str, str] | None:
        with self._lock:
            track = self._tracks.get((group_arn, target_id))
            return (track.state, track.reason, track.description) if track else None

    def tick(self) -> None:
        now = time.monotonic()
        registered: set[tuple[str, str]] = set()
        for group in list(elbv2_backend().target_groups.values()):
            check = check_of(group, self._scale, self._floor_s())
            for target_id in list(group.targets):
                key = (group.arn, target_id)
                registered.add(key)
                with self._lock:
                    track = self._tracks.get(key)
                    if track is None:
                        track = self._tracks[key] = Track(
                            next_due=now + self._registration_delay(), registered_at=now
                        )
                    if track.in_flight or track.next_due > now:
                        continue
                    track.in_flight = True
                    track.next_due = now + check.interval
                self._pool.submit(self._probe_and_record, key, check)
        with self._lock:
            for key in set(self._tracks) - registered:
                del self._tracks[key]

    def _probe_and_record(self, key: tuple[str, str], check: Check) -> None:
        passed, reason, description = probe(self._endpoint_of(key[1]), check)
        with self._lock:
            track = self._tracks.get(key)
            if track is None:
                return
            track.in_flight = False
            if passed:
                track.successes, track.failures = track.successes + 1, 0
                # ELBv2: a newly registered target must pass one check to be healthy; one
                # that was unhealthy needs the healthy threshold.
                needed = 1 if track.state == "initial" else check.healthy_threshold
                if track.state != "healthy" and track.successes >= needed:
                    if track.state == "initial":
                        self._on_healthy(key[1], track.registered_at, time.monotonic())
                    track.state, track.reason, track.description = "healthy", "", ""
                    log.info("%s is healthy in %s", key[1], key[0].rsplit("/", 2)[-2])
            else:
                track.failures, track.successes = track.failures + 1, 0
                if track.state == "initial":
                    track.reason = "Elb.InitialHealthChecking"
                    track.description = "Initial health checks in progress"
                if track.state != "unhealthy" and track.failures >= check.unhealthy_threshold:
                    track.state = "unhealthy"
                    log.info("%s is unhealthy: %s", key[1], description)
                if track.state == "unhealthy":
                    track.reason, track.description = reason, description

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
