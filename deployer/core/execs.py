"""`deployer exec`, decided: Run Command's rate controls, each instance's result, the verdict,
and the journal entry. Pure.

An instance fails the exec unless its invocation ended in Success. An instance of the fleet
that Run Command never reached (no SSM agent answering for it) fails too: the command did not
run there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from deployer.core.model import Actor, Outcome
from deployer.errors import BadInput

# SendCommand's own patterns for MaxConcurrency and MaxErrors.
CONCURRENCY = re.compile(r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$")
ERRORS = re.compile(r"^([1-9][0-9]*|0|[1-9][0-9]%|[0-9]%|100%)$")
DEFAULT_CONCURRENCY = "50"  # SendCommand's defaults
DEFAULT_ERRORS = "0"
MAX_EXECUTION_TIMEOUT_S = 172_800  # AWS-RunShellScript's executionTimeout limit (48 h)
TERMINAL = frozenset({"Success", "Failed", "TimedOut", "Cancelled"})  # a command's Status
SUCCESS = "Success"
NOT_REACHED = "NotReached"  # our word: the fleet's instance had no invocation at all


def checked_limits(concurrency: str, errors: str, timeout_s: int) -> tuple[str, str, int]:
    """The rate controls and timeout as SendCommand takes them; BadInput names the option."""
    if not CONCURRENCY.match(concurrency):
        raise BadInput(
            f"--max-concurrency {concurrency!r}: give a number of instances (1 or more) or a "
            "percentage (1% to 100%)"
        )
    if not ERRORS.match(errors):
        raise BadInput(
            f"--max-errors {errors!r}: give a number of failed instances (0 or more) or a "
            "percentage (0% to 100%)"
        )
    if not 1 <= timeout_s <= MAX_EXECUTION_TIMEOUT_S:
        raise BadInput(f"--timeout {timeout_s}: give 1 to {MAX_EXECUTION_TIMEOUT_S} seconds")
    return concurrency, errors, timeout_s


def count_of(limit: str, targets: int, minimum: int) -> int:
    """A rate control as a number of instances: `5`, or `10%` of the targets (rounded up for
    concurrency, down for errors: the caller's `minimum` is 1 or 0).
    """
    if limit.endswith("%"):
        share = int(limit[:-1]) * targets / 100
        value = math.ceil(share) if minimum else math.floor(share)
        return max(minimum, value)
    return max(minimum, int(limit))


@dataclass(frozen=True)
class InstanceResult:
    """One instance's invocation, as Run Command reported it."""

    instance_id: str
    status: str  # Success, Failed, TimedOut, Cancelled, ... or NOT_REACHED
    exit_code: int = -1
    output: str = ""  # what Run Command answers inline (it truncates)
    truncated: bool = False
    stdout_stream: str = ""  # the full output in the log group
    stderr_stream: str = ""

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS


def results_for(
    expected: Sequence[str], invocations: Sequence[InstanceResult]
) -> list[InstanceResult]:
    """Every instance of the fleet and every instance that answered, in a stable order."""
    found = {r.instance_id: r for r in invocations}
    missing = [InstanceResult(i, NOT_REACHED) for i in expected if i not in found]
    return sorted([*found.values(), *missing], key=lambda r: r.instance_id)


def failed(results: Sequence[InstanceResult]) -> list[InstanceResult]:
    return [r for r in results if not r.ok]


@dataclass(frozen=True)
class ExecRecord:
    """One exec in the journal: who ran what on which fleet, and how it ended."""

    exec_id: str
    started_at: str
    actor: Actor
    command: tuple[str, ...]
    version: str  # the fleet's
    fleet_stack: str
    role: str  # live, or the version asked for
    command_id: str = ""
    outcome: Outcome = Outcome.IN_PROGRESS
    finished_at: str = ""
    instances: Mapping[str, str] = field(default_factory=dict)  # id -> status
    reason: str = ""

    def finished(
        self, when: str, results: Sequence[InstanceResult], reason: str = ""
    ) -> ExecRecord:
        bad = failed(results)
        return replace(
            self,
            outcome=Outcome.FAILED if bad or not results else Outcome.SUCCEEDED,
            finished_at=when,
            instances={r.instance_id: r.status for r in results},
            reason=reason or summary(results),
        )

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["outcome"] = self.outcome.value
        body["command"] = list(self.command)
        body["instances"] = dict(self.instances)
        return body

    @staticmethod
    def from_json(body: Mapping[str, Any]) -> ExecRecord:
        values = dict(body)
        values["actor"] = Actor(**values["actor"])
        values["outcome"] = Outcome(values["outcome"])
        values["command"] = tuple(values["command"])
        return ExecRecord(**values)


def summary(results: Sequence[InstanceResult]) -> str:
    """`2/2 succeeded`, or which failed and how."""
    bad = failed(results)
    if not results:
        return "no instance to run on"
    if not bad:
        return f"{len(results)}/{len(results)} succeeded"
    named = ", ".join(
        f"{r.instance_id} ({describe(r)})" for r in sorted(bad, key=lambda r: r.instance_id)
    )
    return f"{len(bad)}/{len(results)} failed: {named}"


def describe(result: InstanceResult) -> str:
    if result.status == NOT_REACHED:
        return "not reached: no SSM agent answered for it"
    if result.status == "Failed" and result.exit_code >= 0:
        return f"exit {result.exit_code}"
    if result.status == "TimedOut":
        return "timed out"
    return result.status.lower()
