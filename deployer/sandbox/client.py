"""Talking to a running sandbox's control API (/_sandbox/): for tests and benchmarks that
turn on exactly the behaviour they exercise, trigger outages and read the timeline.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def _call(endpoint: str, route: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{endpoint.rstrip('/')}/_sandbox/{route}",
        data=data,
        method="POST" if data is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    # the sandbox, http on loopback (bandit B310)
    with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310
        return json.loads(response.read())


def behaviours(endpoint: str) -> dict[str, Any]:
    return dict(_call(endpoint, "behaviours"))


def set_behaviours(endpoint: str, **changes: Any) -> dict[str, Any]:
    """Change behaviours of the running sandbox, e.g. set_behaviours(e, stack_failures={...})."""
    return dict(_call(endpoint, "behaviours", changes))


def timeline(endpoint: str, since: float = 0.0) -> list[dict[str, Any]]:
    """Modelled AWS operations ({kind, id, start, end}, epoch seconds) that ended after `since`."""
    return list(_call(endpoint, f"timeline?since={since}"))


def outage(endpoint: str, seconds: float, after_s: float = 0.0) -> None:
    """Refuse connections for `seconds` (real), starting `after_s` from now."""
    _call(endpoint, "outage", {"seconds": seconds, "after_s": after_s})


def sandbox_status(endpoint: str) -> dict[str, Any]:
    return dict(_call(endpoint, "status"))
