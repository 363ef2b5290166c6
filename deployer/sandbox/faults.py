"""Throttling and server errors, answered with each service's own error codes.

A token bucket per service (`rate_limits`) throttles like AWS's request rate limits; on top,
`throttle_fraction` and `error_fraction` throttle or fail a seeded random share of calls.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from deployer.sandbox.world import World

# (code, HTTP status) of the throttling error each service answers, as its API reference says.
THROTTLING: dict[str, tuple[str, int]] = {
    "ec2": ("RequestLimitExceeded", 503),
    "s3": ("SlowDown", 503),
    "dynamodb": ("ThrottlingException", 400),
    "ssm": ("ThrottlingException", 400),
    "acm": ("ThrottlingException", 400),
}
DEFAULT_THROTTLING = ("Throttling", 400)  # the query-protocol services: CFN, ASG, ELBv2, STS, ...
SERVER_ERRORS: dict[str, tuple[str, int]] = {
    "ec2": ("InternalError", 500),
    "s3": ("InternalError", 500),
    "dynamodb": ("InternalServerError", 500),
    "ssm": ("InternalServerError", 500),
}
DEFAULT_SERVER_ERROR = ("InternalFailure", 500)
UNAVAILABLE = ("ServiceUnavailable", 503)


@dataclass(frozen=True)
class Fault:
    code: str
    message: str
    status: int


class _Bucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Faults:
    def __init__(self, world: World) -> None:
        self._world = world
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def decide(self, service: str) -> Fault | None:
        """The fault this call meets, or None. `service` is boto3's name (ec2, s3, ...)."""
        world = self._world
        behaviours = world.behaviours
        with self._lock:
            limit = behaviours.rate_limits.get(service)
            if limit is not None:
                # Buckets refill in modelled time: a scaled-down sandbox is not slower than AWS.
                rate = limit[0] / max(world.time_scale, 1e-3)
                bucket = self._buckets.get(service)
                if bucket is None or (bucket.rate, bucket.burst) != (rate, limit[1]):
                    bucket = self._buckets[service] = _Bucket(rate, limit[1], world.clock())
                if not bucket.take(world.clock()):
                    return self.throttling(service)
            draw = world.rng.random()
        throttle = behaviours.fraction(behaviours.throttle_fraction, service)
        if draw < throttle:
            return self.throttling(service)
        if draw < throttle + behaviours.fraction(behaviours.error_fraction, service):
            code, status = (
                UNAVAILABLE
                if world.rng.random() < 0.5
                else SERVER_ERRORS.get(service, DEFAULT_SERVER_ERROR)
            )
            return Fault(code, "We encountered an internal error. Please try again.", status)
        return None

    @staticmethod
    def throttling(service: str) -> Fault:
        code, status = THROTTLING.get(service, DEFAULT_THROTTLING)
        message = "Please reduce your request rate." if service == "s3" else "Rate exceeded"
        return Fault(code, message, status)
