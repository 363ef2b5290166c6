"""How a release moves traffic and judges it: the strategy (canary steps, holds), the gates
(HTTP checks, metric gates, alarms) and the team's own verify commands.
"""

from __future__ import annotations

import re
import shlex
from typing import Literal

from pydantic import Field, field_validator, model_validator

from deployer.config.base import CIDR_PATTERN, Strict, parse_duration

MAX_WEIGHT = 999  # ELBv2's limit for a target group weight in a forward action


PAUSE = "pause"


class Strategy(Strict):
    kind: Literal["all_at_once", "canary"] = "all_at_once"
    steps: tuple[int | Literal["pause"], ...] = Field(
        default=(10, 50, 100),
        description="canary: green's weight at each step; blue gets (last step - weight). "
        "Integers 0-999, strictly ascending; the last step takes all traffic. `pause` between "
        "two steps holds the traffic of the step before it until `deployer promote` (or "
        "`deployer abort`, or pause_timeout: then it rolls back).",
    )
    pause_timeout: int = Field(
        default=3600,
        description="Seconds (or 90m, 1h, 1d) a pause waits for `deployer promote` before "
        "the release rolls back.",
    )
    bake_seconds: int = Field(default=60, ge=0, le=86400, description="How long each step holds.")
    test_listener_port: int = Field(
        default=8081, ge=1, le=65535, description="Carries no user traffic; green is checked here."
    )
    test_listener_cidr: str = Field(
        default="auto",
        description="Who may reach the test listener, where an unreleased build answers: auto "
        "(the address deployer runs from, asked of bake.ssh.public_ip_url) or a CIDR (your "
        "CI runners' egress, a VPN). A new address updates the service stack's rule.",
    )

    @field_validator("test_listener_cidr")
    @classmethod
    def _test_cidr(cls, value: str) -> str:
        if value != "auto" and not re.match(CIDR_PATTERN, value):
            raise ValueError(f"'{value}' is neither auto nor a CIDR like 203.0.113.7/32")
        if value.endswith("/0"):
            raise ValueError(f"'{value}' opens the test listener, an unreleased build, to all")
        return value

    on_failure: Literal["scale_to_zero", "delete"] = Field(
        default="scale_to_zero",
        description="What happens at once to a green fleet that failed a gate; the next "
        "release or `deployer gc` deletes it either way.",
    )
    watch_seconds: int = Field(
        default=0,
        ge=0,
        le=86400,
        description="After all traffic moved, keep evaluating every gate this long with the "
        "previous fleet warm at weight 0; a failure sends traffic back, as during a step.",
    )

    @field_validator("pause_timeout", mode="before")
    @classmethod
    def _pause_timeout(cls, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("must be seconds or a duration like 90m, 1h, 1d")
        seconds = parse_duration(value)
        if not 1 <= seconds <= 7 * 86400:
            raise ValueError(f"{seconds}s is outside 1s-7d")
        return seconds

    @model_validator(mode="after")
    def _pauses_are_canary_steps(self) -> Strategy:
        if self.kind != "canary" and self.pauses_after:
            raise ValueError(
                "steps: `pause` holds a canary step; with kind: all_at_once there is none to "
                "hold (use kind: canary)"
            )
        return self

    @property
    def weights(self) -> tuple[int, ...]:
        """The steps' weights, pauses left out."""
        return tuple(w for w in self.steps if not isinstance(w, str))

    @property
    def pauses_after(self) -> frozenset[int]:
        """The (0-based) steps a pause follows."""
        found, index = set(), -1
        for entry in self.steps:
            if isinstance(entry, str):
                found.add(index)
            else:
                index += 1
        return frozenset(found)

    @field_validator("steps", mode="before")
    @classmethod
    def _entries(cls, entries: object) -> object:
        if not isinstance(entries, list | tuple):
            return entries
        for index, entry in enumerate(entries):
            if entry != PAUSE and (isinstance(entry, bool) or not isinstance(entry, int)):
                raise ValueError(
                    f"entry {index + 1} ({entry!r}) is neither a weight (0-{MAX_WEIGHT}) nor "
                    f"`{PAUSE}`"
                )
        return entries

    @field_validator("steps")
    @classmethod
    def _steps(cls, entries: tuple[int | str, ...]) -> tuple[int | str, ...]:
        for index, entry in enumerate(entries):
            if not isinstance(entry, str):
                continue
            if index == 0 or index == len(entries) - 1 or isinstance(entries[index - 1], str):
                raise ValueError(
                    f"`pause` at position {index + 1} of {list(entries)}: a pause goes between "
                    "two steps (it holds the traffic of the step before it)"
                )
        steps = tuple(w for w in entries if not isinstance(w, str))
        if not steps:
            raise ValueError("needs at least one step")
        for weight in steps:
            if not 0 <= weight <= MAX_WEIGHT:
                raise ValueError(f"weight {weight} is outside 0-{MAX_WEIGHT} (the ELBv2 range)")
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)) or steps[-1] == 0:
            raise ValueError(f"must rise strictly to a last step above 0, got {list(steps)}")
        return entries


class HttpCheck(Strict):
    path: str = Field(default="/healthz", pattern=r"^/[\x21-\x7e]*$")
    expect_status: int = Field(default=200, ge=100, le=599)
    body_pattern: str | None = Field(
        default=None, description="A regular expression the body must contain."
    )
    latency_ms: int | None = Field(default=None, ge=1, le=60000)

    @field_validator("body_pattern")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return pattern


class DefaultAlarms(Strict):
    """The alarms every fleet stack makes on its own target group."""

    target_5xx_count: int = Field(
        default=5,
        ge=1,
        le=100000,
        description="5xx answers of green's targets per minute (and error_percent of its "
        "requests).",
    )
    connection_error_count: int = Field(
        default=5,
        ge=1,
        le=100000,
        description="Connections green's targets refused or reset per minute (users got the "
        "load balancer's 502s, which the targets' 5xx count leaves out), and error_percent "
        "of its requests.",
    )
    error_percent: float = Field(
        default=5.0,
        gt=0,
        le=100,
        description="The 5xx and connection-error alarms breach only when their minute's count "
        "is also at least this share of green's requests: a busy service's usual errors "
        "(12 a minute at 200 requests/s and 0.1 %) are not a failure; the metric gate judges "
        "smaller regressions against blue.",
    )
    p99_seconds: float = Field(
        default=2.0, gt=0, le=60, description="p99 target response time over a minute."
    )
    unhealthy_hosts: int = Field(default=1, ge=1, le=100, description="Unhealthy targets.")


class MetricGates(Strict):
    """Green judged against blue from the load balancer's metrics (requests, target 5xx,
    target response time), on CloudWatch's clock. Blue is the baseline; a first release,
    with no blue, is held to absolute limits.
    """

    enabled: bool = True
    min_periods: int = Field(
        default=3,
        ge=1,
        le=60,
        description="Complete minute periods with requests a step needs before green can pass "
        "(a step holds until it has them, or for strategy.bake_seconds, whichever is longer).",
    )
    max_error_increase: float = Field(
        default=0.5,
        ge=0,
        le=100,
        description="Percentage points green's 5xx rate may exceed blue's before it can fail "
        "(it must also be significantly higher).",
    )
    max_latency_ratio: float = Field(
        default=1.5,
        ge=1,
        le=100,
        description="How many times slower than blue (per-period medians) green may be "
        "before it can fail (it must also be significantly slower).",
    )
    min_latency_increase_ms: int = Field(
        default=50,
        ge=0,
        le=60000,
        description="...and slower by at least this many milliseconds (a 1 ms app that takes "
        "2 ms is not slower for anyone).",
    )
    latency_statistic: Literal["Average", "p50", "p90", "p95", "p99"] = Field(
        default="p90", description="The per-period statistic of TargetResponseTime compared."
    )
    significance: float = Field(
        default=0.01, gt=0, le=0.2, description="The p-value below which a difference counts."
    )
    max_error_rate: float = Field(
        default=5.0,
        gt=0,
        le=100,
        description="With no previous fleet to compare with: the 5xx rate (percent) green "
        "must not be significantly above.",
    )
    max_latency_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="With no previous fleet to compare with: the median period's latency "
        "green must stay under.",
    )
    require_traffic: bool = Field(
        default=False,
        description="The same as on_inconclusive: rollback (kept for existing configs).",
    )
    on_inconclusive: Literal["proceed", "rollback"] = Field(
        default="proceed",
        description="A step whose metrics still show neither harm nor safety at its deadline "
        "(too few users' requests): proceed, said plainly in the events, the summary and the "
        "picture, or roll back.",
    )
    publication_delay_seconds: int = Field(
        default=120,
        ge=0,
        le=900,
        description="How long after a minute ends its metrics count (settled): CloudWatch "
        "gives no figure; ALB datapoints commonly appear about 2 minutes late, and a period "
        "may still be revised.",
    )
    min_minute_requests: int = Field(
        default=10,
        ge=1,
        le=100000,
        description="Users' requests a minute of green needs to be compared with blue's for "
        "latency.",
    )

    @property
    def on_inconclusive_effective(self) -> str:
        return "rollback" if self.require_traffic else self.on_inconclusive


class Gates(Strict):
    http: tuple[HttpCheck, ...] = Field(default_factory=lambda: (HttpCheck(),))
    metrics: MetricGates = Field(default_factory=MetricGates)
    alarms: tuple[str, ...] = Field(
        default=(),
        description="CloudWatch alarm names; any in ALARM fails the gate. Empty: the new "
        "fleet's own default alarms (5xx, p99 latency, unhealthy hosts).",
    )
    default_alarms: DefaultAlarms = Field(default_factory=DefaultAlarms)
    max_failures: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Failed observations a step tolerates before the gate fails.",
    )
    interval_seconds: float = Field(
        default=5,
        ge=0.1,
        le=300,
        description="How often gates are evaluated during waits and bake times.",
    )


class Verify(Strict):
    """The team's own checks: commands run on the machine running deployer, from the config
    file's folder, with DEPLOYER_URL, DEPLOYER_TEST_URL, DEPLOYER_VERSION,
    DEPLOYER_PREVIOUS_VERSION and DEPLOYER_STEP set, and without the run's credentials. A
    non-zero exit or a timeout fails the release (exit 1, traffic back).
    """

    timeout_seconds: int = Field(default=300, ge=1, le=7200)
    aws_credentials: bool = Field(
        default=False,
        description="Pass the run's AWS credentials to the hooks (they get none by default: "
        "a hook needs the URLs, not the deploy role).",
    )
    before_traffic: tuple[str, ...] = Field(
        default=(),
        max_length=20,
        description="Against the test listener, after green passed its gates there and "
        "before any user traffic.",
    )
    after_step: tuple[str, ...] = Field(
        default=(),
        max_length=20,
        description="Against production, after each traffic step's hold.",
    )

    @field_validator("before_traffic", "after_step")
    @classmethod
    def _commands(cls, commands: tuple[str, ...]) -> tuple[str, ...]:
        for index, command in enumerate(commands):
            try:
                words = shlex.split(command)
            except ValueError as exc:
                raise ValueError(f"entry {index}: {exc}") from None
            if not words:
                raise ValueError(f"entry {index}: an empty command")
        return commands
