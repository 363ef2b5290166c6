"""Sandbox profiles: which AWS behaviours the sandbox reproduces, and how strictly.

`fast` answers at once (the demo's default). `aws` behaves like AWS where deployer depends
on it. Every behaviour is one named switch in `Behaviours`, so a test can turn on exactly
the fault it exercises (`deployer.sandbox.client.set_behaviours`), and the whole mapping can
be given at start-up as JSON (`DEPLOYER_SANDBOX_BEHAVIOURS`, a file path or inline JSON).

| switch               | what it makes the sandbox do                                         |
|----------------------|----------------------------------------------------------------------|
| latency              | resources take AWS's time (deployer/sandbox/latency.py), scaled      |
| consistency_window_s | a new EC2 id answers NotFound for this long (real seconds)           |
| client_tokens        | RunInstances/CreateStack/CopyImage tokens are idempotent, as on AWS  |
| sigv4_only_s3        | SigV2 S3 requests and presigned URLs, and expired ones, get 403      |
| stack_failures       | {logical id: reason}: that resource fails to create                  |
| cfn_on_failure       | OnFailure=DELETE/ROLLBACK and DisableRollback are honoured           |
| metric_alarms_only   | DescribeAlarms without AlarmTypes lists metric alarms only           |
| rate_limits          | {service: [rate/s, burst]}: a token bucket answering that service's  |
|                      | own throttling error                                                 |
| throttle_fraction    | {service or "*": fraction} of calls throttled at random              |
| error_fraction       | {service or "*": fraction} of calls answered 500/503                 |
| api_latency_ms       | added to every API call (scaled)                                     |
| denied               | {"service:Action": code}: that call is refused (AccessDenied, ...),  |
|                      | as a missing IAM permission would be                                 |
| metric_publication_delay_s | a CloudWatch period of ALB metrics is readable this long (modelled |
|                      | seconds) after it closed; alarms see it then too                     |
| metric_publication_spread_s | plus up to this much more, drawn once per period (modelled |
|                      | seconds): the `aws` profile's periods are readable 60 to 120 s late  |
| metric_late_fraction | this share of the samples arrives up to `metric_late_s` (modelled    |
| metric_late_s        | seconds) after its period was first readable, revising what was read |
| cloudwatch_time_scale| how fast CloudWatch's minute runs (real seconds per modelled second);|
|                      | 0: the sandbox's time scale. `fast` runs it 50x fast for the demo    |
| quotas               | {"vpcs": n, "addresses": n, "vcpus": n}: the account's EC2 quotas    |
|                      | (otherwise AWS's defaults, 5 and 5, and 64 running On-Demand         |
|                      | standard vCPUs), as Service Quotas would raise them                  |
| shutdown_time_scale  | the scale of an instance's own `shutdown -h +N` timer (default: the  |
|                      | sandbox's time scale). A bake's playbook runs in real time at any    |
|                      | scale, so a scaled bake.max_builder_minutes may end a slow bake      |
|                      | midway: the tests keep it at 1.0 except where they test the timer    |
| probe_floor_s        | the fewest real seconds between two health probes of one target, and |
|                      | between two flushes of one host's log agent (AWS: 5 s at the least). |
|                      | A scaled 5 s interval would probe 10 times a second and burn the CPU |
|                      | of the machine the sandbox runs on; only tests that must detect      |
|                      | faster lower it, and say why                                         |
| seed                 | seeds every random choice above                                      |

An outage (connections refused for a while) is an action, not a setting:
`deployer.sandbox.client.outage(endpoint, seconds, after_s)`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PROFILES = ("fast", "aws")
PROFILE_ENV = "DEPLOYER_SANDBOX_PROFILE"
BEHAVIOURS_ENV = "DEPLOYER_SANDBOX_BEHAVIOURS"

# Sustained request rates AWS documents or that accounts meet in practice (per second, burst).
# EC2: "API request rate limits" (token bucket: describe 100/s refill 20/s, mutating
# bucket 200 refill 5/s); CloudFormation, Auto Scaling and ELBv2 throttle around a few
# calls per second per account; DynamoDB on-demand and SSM standard throughput are higher.
AWS_RATE_LIMITS: dict[str, tuple[float, float]] = {
    "ec2": (20.0, 100.0),
    "cloudformation": (10.0, 20.0),
    "autoscaling": (10.0, 20.0),
    "elbv2": (10.0, 40.0),
    "cloudwatch": (20.0, 50.0),
    "dynamodb": (100.0, 200.0),
    "ssm": (40.0, 40.0),
    "sts": (50.0, 100.0),
    "s3": (100.0, 300.0),
}


@dataclass(frozen=True)
class Behaviours:
    latency: bool = False
    consistency_window_s: float = 0.0
    client_tokens: bool = False
    sigv4_only_s3: bool = False
    stack_failures: dict[str, str] = field(default_factory=dict)
    cfn_on_failure: bool = False
    metric_alarms_only: bool = False
    rate_limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    throttle_fraction: dict[str, float] = field(default_factory=dict)
    error_fraction: dict[str, float] = field(default_factory=dict)
    api_latency_ms: float = 0.0
    denied: dict[str, str] = field(default_factory=dict)
    metric_publication_delay_s: float = 0.0
    metric_publication_spread_s: float = 0.0
    metric_late_fraction: float = 0.0
    metric_late_s: float = 0.0
    cloudwatch_time_scale: float = 0.0
    quotas: dict[str, float] = field(default_factory=dict)
    shutdown_time_scale: float | None = None
    probe_floor_s: float = 1.0
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def merged(self, changes: dict[str, Any]) -> Behaviours:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown sandbox behaviour(s): {', '.join(sorted(unknown))}")
        values = dict(changes)
        if "rate_limits" in values:
            values["rate_limits"] = {
                k: (float(v[0]), float(v[1])) for k, v in dict(values["rate_limits"]).items()
            }
        return replace(self, **values)

    def fraction(self, table: dict[str, float], service: str) -> float:
        return float(table.get(service, table.get("*", 0.0)))

    def cloudwatch_scale(self, time_scale: float) -> float:
        """Real seconds per modelled CloudWatch second."""
        return self.cloudwatch_time_scale or time_scale


# The demo's sandbox answers at once; CloudWatch's minute lasts 1.2 s there, so that the
# metric gates of a demo release decide in seconds rather than minutes.
FAST_CLOUDWATCH_TIME_SCALE = 0.02
FAST = Behaviours(cloudwatch_time_scale=FAST_CLOUDWATCH_TIME_SCALE)
AWS = Behaviours(
    latency=True,
    consistency_window_s=1.0,
    client_tokens=True,
    sigv4_only_s3=True,
    cfn_on_failure=True,
    metric_alarms_only=True,
    rate_limits=dict(AWS_RATE_LIMITS),
    api_latency_ms=40.0,
    # CloudWatch documents no figure; ALB datapoints are commonly readable one to two minutes
    # after their minute, and a period may gain samples after it was first read.
    metric_publication_delay_s=60.0,
    metric_publication_spread_s=60.0,
    metric_late_fraction=0.05,
    metric_late_s=60.0,
)


def behaviours_for(profile: str, overrides: str | None = None) -> Behaviours:
    """The behaviours of `profile`, changed by `overrides` (a JSON file path or JSON text)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown sandbox profile '{profile}' (choose from {', '.join(PROFILES)})")
    base = AWS if profile == "aws" else FAST
    if not overrides:
        return base
    text = overrides
    if not overrides.lstrip().startswith("{"):
        text = Path(overrides).read_text(encoding="utf-8")
    return base.merged(json.loads(text))


def profile_from_env(default: str = "fast") -> str:
    return os.environ.get(PROFILE_ENV) or default
