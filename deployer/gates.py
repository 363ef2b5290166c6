"""Gate probes: observe target health, HTTP checks and CloudWatch alarms (the impure half;
deployer.core.gates judges). A probe that cannot be read returns passed=None: fail closed.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.cloudwatch import CloudWatch
from deployer.aws.elbv2 import Elbv2
from deployer.config import HttpCheck
from deployer.core.gates import GateKind, Observation
from deployer.core.health import assess_target_health

DEFAULT_HTTP_TIMEOUT_S = 5.0


def observe_targets(elb: Elbv2, target_group_arn: str, expected: int) -> Observation:
    try:
        targets = elb.target_health(target_group_arn)
    except (ClientError, BotoCoreError) as exc:
        return Observation(GateKind.TARGET_HEALTH, "green", None, f"unreadable: {exc}")
    return assess_target_health(targets, expected)


def observe_http(base_url: str, check: HttpCheck) -> Observation:
    name = f"GET {check.path}"
    url = base_url.rstrip("/") + check.path
    timeout = check.latency_ms / 1000 * 2 if check.latency_ms else DEFAULT_HTTP_TIMEOUT_S
    started = time.monotonic()
    try:
        # bandit B310: the URL is the load balancer's http(s) listener, built by deployer
        with urllib.request.urlopen(url, timeout=timeout) as response:  # nosec B310
            status, body = response.status, response.read(65536)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(65536)
    except (OSError, ValueError) as exc:
        return Observation(GateKind.HTTP, name, None, f"unreadable: {exc}")
    elapsed_ms = (time.monotonic() - started) * 1000
    problems = []
    if status != check.expect_status:
        problems.append(f"status {status}, expected {check.expect_status}")
    if check.body_pattern and not re.search(check.body_pattern, body.decode(errors="replace")):
        problems.append(f"body does not match /{check.body_pattern}/")
    if check.latency_ms and elapsed_ms > check.latency_ms:
        problems.append(f"took {elapsed_ms:.0f} ms, budget {check.latency_ms} ms")
    detail = "; ".join(problems) or f"status {status} in {elapsed_ms:.0f} ms"
    return Observation(GateKind.HTTP, name, not problems, detail)


def observe_alarms(cloudwatch: CloudWatch, names: Sequence[str]) -> list[Observation]:
    if not names:
        return []
    try:
        states = cloudwatch.alarm_states(names)
    except (ClientError, BotoCoreError) as exc:
        return [Observation(GateKind.ALARM, n, None, f"unreadable: {exc}") for n in names]
    result = []
    for name in names:
        state, reason = states.get(name, ("MISSING", "the alarm does not exist"))
        # Any alarm in ALARM fails; INSUFFICIENT_DATA is not ALARM. A missing alarm is unreadable.
        passed = None if state == "MISSING" else state != "ALARM"
        detail = f"{state}: {reason}" if reason else state
        result.append(Observation(GateKind.ALARM, name, passed, detail))
    return result
