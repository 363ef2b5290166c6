"""Gate judgement: observations from three kinds of gate become one verdict. Fails closed.

An observation that could not be read (passed is None) counts as a failure. Each gate may
fail `max_failures` times within a step before the step fails; the first failure beyond that
fails the release, naming the gate, what was observed and the step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class GateKind(StrEnum):
    TARGET_HEALTH = "target-health"
    HTTP = "http"
    ALARM = "alarm"
    METRIC = "metric"  # green judged against blue from CloudWatch (core.metrics)
    VERIFY = "verify"  # the team's own check (verify: in deployer.yaml)


@dataclass(frozen=True)
class Observation:
    kind: GateKind
    name: str  # "GET /healthz", an alarm name, "error rate", or the target group
    passed: bool | None  # None: could not be read, which counts as failed
    detail: str
    # A metric gate's verdict ("pass", "fail", "continue": not enough evidence yet, which
    # is not a failure) and its numbers (rates, counts, p-value, effect size).
    verdict: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def gate(self) -> str:
        return f"{self.kind.value} {self.name}".strip()


@dataclass(frozen=True)
class Judgement:
    failed: Observation | None
    failures: Mapping[str, int]

    @property
    def passed(self) -> bool:
        return self.failed is None


def judge(
    observations: Sequence[Observation], failures: Mapping[str, int], max_failures: int
) -> Judgement:
    counts = dict(failures)
    for observation in observations:
        if observation.passed is True:
            continue
        counts[observation.gate] = counts.get(observation.gate, 0) + 1
        if counts[observation.gate] > max_failures:
            return Judgement(observation, counts)
    return Judgement(None, counts)
